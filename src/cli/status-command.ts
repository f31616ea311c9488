import { setTimeout as sleep } from 'node:timers/promises';
import { renderStatusText, type VmStatus } from '../console/vm-status.js';
import { ExitCode } from '../errors.js';
import { isAlive, readState } from '../lifecycle/claim-run-dir.js';
import { controlRequest, NoLauncherError } from '../lifecycle/control-client.js';
import { locateVm, parseSubcommand, subcommandParser, type VmLocation } from './locate-vm.js';

/**
 * `snabbvm status [--json] [--watch]`: the VM's state, uptime, addresses and ports. Exits 0 only when the VM is
 * running, so it serves as the image's HEALTHCHECK and a Kubernetes probe.
 */
export async function statusCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<ExitCode> {
  const program = subcommandParser('status', "the VM's state, uptime, addresses and ports; exit 0 only when it is running")
    .option('--json', 'machine-readable output')
    .option('--watch', 'refresh every second (Ctrl-C ends)');
  if (parseSubcommand(program, argv) === 'exit') return ExitCode.Ok;
  const opts = program.opts<{ name?: string; runDir?: string; json?: boolean; watch?: boolean }>();
  const vm = locateVm(opts, env);
  if (opts.watch) {
    for (;;) {
      const status = await readStatus(vm);
      process.stdout.write(`\x1b[H\x1b[2J${renderStatusText(status)}\n`);
      if (status.state === 'stopped') return ExitCode.Failure;
      await sleep(1000);
    }
  }
  const status = await readStatus(vm);
  process.stdout.write(opts.json ? `${JSON.stringify(status, null, 2)}\n` : `${renderStatusText(status)}\n`);
  return status.state === 'running' ? ExitCode.Ok : ExitCode.Failure;
}

/** From the launcher when it answers; else from its state file: starting (launcher alive) or stopped. */
export async function readStatus(vm: VmLocation): Promise<VmStatus> {
  try {
    return await controlRequest<VmStatus>(vm.paths.controlSocket, { cmd: 'status' });
  } catch (err) {
    if (!(err instanceof NoLauncherError)) throw err;
  }
  const state = readState(vm.paths);
  if (state && isAlive(state.pid)) return { name: vm.name, state: 'starting', launcherPid: state.pid, addresses: [], ports: [] };
  return { name: vm.name, state: 'stopped', addresses: [], ports: [] };
}
