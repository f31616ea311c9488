import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { Command, CommanderError } from 'commander';
import { DEFAULT_NAME } from '../config/load-config.js';
import { ExitCode, inputError, UserError, usageError } from '../errors.js';
import { readState } from '../lifecycle/claim-run-dir.js';
import { ControlClient, NoLauncherError } from '../lifecycle/control-client.js';
import { runtimePaths, type RuntimePaths } from '../paths.js';

export const RUN_BASE = '/run/snabbvm';

export interface VmLocation {
  name: string;
  paths: RuntimePaths;
}

/**
 * Which VM a subcommand talks to: --run-dir, else --name, else the environment the launcher was given
 * (docker exec inherits the container's NAME / SNABBVM_*), else the only VM under /run/snabbvm.
 * A name with no runtime folder under /run/snabbvm is an error (exit 3) that lists the VMs there.
 */
export function locateVm(opts: { name?: string; runDir?: string }, env: NodeJS.ProcessEnv, runBase = RUN_BASE): VmLocation {
  const runDir = opts.runDir ?? (opts.name === undefined ? env.SNABBVM_RUN_DIR : undefined);
  let name = opts.name ?? env.SNABBVM_NAME ?? env.NAME;
  if (runDir !== undefined) {
    const paths = runtimePaths(path.resolve(runDir));
    return { name: name ?? readState(paths)?.name ?? path.basename(runDir), paths };
  }
  const running = existsSync(runBase) ? readdirSync(runBase).sort() : [];
  if (name === undefined) name = running.length === 1 ? running[0]! : DEFAULT_NAME;
  if (!running.includes(name)) throw unknownVmError(name, running);
  return { name, paths: runtimePaths(path.join(runBase, name)) };
}

export function unknownVmError(name: string, running: string[]): UserError {
  const here = running.length === 0 ? 'no VM runs in this container' : `the VMs here: ${running.join(', ')}`;
  return inputError(`no VM named '${name}'; ${here} (give one with --name)`);
}

/** A subcommand's parser: --name and --run-dir, commander errors as usage errors (exit 2). */
export function subcommandParser(name: string, description: string): Command {
  return new Command(`snabbvm ${name}`)
    .description(description)
    .option('--name <name>', 'the VM (default: NAME / SNABBVM_NAME, or the only VM running)')
    .option('--run-dir <dir>', "the VM's runtime folder (default: /run/snabbvm/<name>)")
    .helpOption('-h, --help', 'show this help')
    .exitOverride()
    .configureOutput({ outputError: () => {} });
}

/** Parses; 'exit' when help was shown. */
export function parseSubcommand(program: Command, argv: string[]): 'exit' | undefined {
  try {
    program.parse(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed') return 'exit';
      throw usageError(`${err.message.replace(/^error: /, '')}; see ${program.name()} --help`);
    }
    throw err;
  }
  return undefined;
}

/** No launcher answers for this VM: one line, exit 1 (the same as `snabbvm status` for a stopped VM). */
export function noVmError(vm: VmLocation, socket: string): UserError {
  return new UserError(`no VM '${vm.name}' is running here (nothing at ${socket}); check --name or --run-dir`, ExitCode.Failure);
}

/** A connection to the VM's launcher, or a one-line error when none runs. */
export async function connectToLauncher(vm: VmLocation): Promise<ControlClient> {
  try {
    return await ControlClient.connect(vm.paths.controlSocket);
  } catch (err) {
    if (err instanceof NoLauncherError) throw noVmError(vm, vm.paths.controlSocket);
    throw err;
  }
}
