import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { defaultBaseDir, loadConfig } from '../config/load-config.js';
import { readEnvOptions, runOptions, type RawOptions } from '../config/options.js';
import { ExitCode, ProblemsError, usageError } from '../errors.js';
import { runVm } from '../lifecycle/run-vm.js';
import { setQuiet } from '../log.js';
import { subcommandHelp, subcommands } from './subcommands.js';

export const VERSION = (
  JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

/** The commander program for `snabbvm [options] <image> [port ...]`, built from the option table. */
export function buildRunParser(): Command {
  const program = new Command('snabbvm')
    .usage('[options] <image file in /u, or URL> [PCI address | vhost-user:PATH ...]')
    .description('Run a VM from a disk image or ISO, with Snabb-driven 10GbE ports, in one docker run.')
    .argument('[image]', 'disk image (qcow2, raw, ...) or ISO: a file in /u, or an http(s) URL')
    .argument('[ports...]', 'PCI addresses of 82599 ports (eth1, eth2, ...), or vhost-user:PATH')
    .version(VERSION, '--version')
    .helpOption('-h, --help', 'show this help')
    .exitOverride()
    .configureOutput({ outputError: () => {} })
    .addHelpText('after', '\nEvery option can also be set in the environment (shown in brackets); the flag wins.\nExit codes: 0 guest powered off, 1 failure, 2 usage, 3 bad input, 4 host not ready, 5 guest forced off after --stop-timeout.' + subcommandHelp);
  for (const spec of runOptions) {
    const option = new Option(spec.flags, `${spec.description}${spec.defaultText ? ` (default: ${spec.defaultText})` : ''} [${spec.env}]`);
    if (spec.repeatable) option.argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]);
    if (spec.hidden) option.hideHelp();
    program.addOption(option);
  }
  return program;
}

/** Parses argv over the environment. Commander's own errors become usage errors (exit 2). */
export function parseRunArgs(argv: string[], env: NodeJS.ProcessEnv): { raw: RawOptions; positionals: string[] } | 'exit' {
  const program = buildRunParser();
  try {
    program.parse(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return 'exit';
      throw usageError(`${err.message.replace(/^error: /, '')}; see snabbvm --help`);
    }
    throw err;
  }
  const envProblems: string[] = [];
  const fromEnv = readEnvOptions(env, envProblems);
  if (envProblems.length > 0) throw new ProblemsError(envProblems.map(usageError));
  return { raw: { ...fromEnv, ...(program.opts() as RawOptions) }, positionals: (program.processedArgs.flat() as (string | undefined)[]).filter((a) => a !== undefined) };
}

export async function runCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<ExitCode> {
  const subcommand = argv[0] !== undefined ? subcommands[argv[0]] : undefined;
  if (subcommand) return subcommand(argv.slice(1), env);
  const parsed = parseRunArgs(argv, env);
  if (parsed === 'exit') return ExitCode.Ok;
  const config = loadConfig({ ...parsed, env, baseDir: defaultBaseDir() });
  setQuiet(config.quiet);
  return runVm(config);
}
