import { ExitCode } from '../errors.js';
import { connectToLauncher, locateVm, parseSubcommand, subcommandParser } from './locate-vm.js';

/**
 * `snabbvm stop`: what docker stop does, from inside: ACPI powerdown, up to --stop-timeout, then forced.
 * Waits until the VM has stopped, unless --no-wait; exits as the launcher does: 0 powered off, 5 forced.
 */
export async function stopCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<ExitCode> {
  const program = subcommandParser('stop', 'shut the VM down: ACPI powerdown, forced after --stop-timeout').option('--no-wait', 'return at once');
  if (parseSubcommand(program, argv) === 'exit') return ExitCode.Ok;
  const opts = program.opts<{ name?: string; runDir?: string; wait: boolean }>();
  const vm = locateVm(opts, env);
  const control = await connectToLauncher(vm);
  try {
    const { stopTimeoutSec } = await control.request<{ stopTimeoutSec: number }>({ cmd: 'stop' });
    process.stderr.write(`snabbvm: stopping VM '${vm.name}': ACPI powerdown, forced after ${stopTimeoutSec} s\n`);
    if (!opts.wait) return ExitCode.Ok;
    const { how } = await control.request<{ how: string }>({ cmd: 'wait-end' });
    const outcome = END_MESSAGES[how] ?? { text: how, code: ExitCode.Failure };
    process.stderr.write(`snabbvm: VM '${vm.name}' ${outcome.text}\n`);
    return outcome.code;
  } catch (err) {
    // the launcher went away before it could answer: the VM went with it
    if (/closed the control connection/.test((err as Error).message)) return ExitCode.Ok;
    throw err;
  } finally {
    control.close();
  }
}

/** The same exit codes as the launcher's own. */
const END_MESSAGES: Record<string, { text: string; code: ExitCode }> = {
  'guest-shutdown': { text: 'powered off', code: ExitCode.Ok },
  forced: { text: 'ignored the powerdown and was forced off', code: ExitCode.Forced },
  crashed: { text: 'ended without a guest shutdown (QEMU crashed or was killed)', code: ExitCode.Failure },
};
