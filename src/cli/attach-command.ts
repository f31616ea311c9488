import { planTmuxAttach, tmuxEnv } from '../console/tmux-session.js';
import { ExitCode, UserError } from '../errors.js';
import { startProgram } from '../process/start-program.js';
import { connectToLauncher, locateVm, parseSubcommand, subcommandParser } from './locate-vm.js';

/**
 * `snabbvm attach`: this terminal on the VM's tmux session (serial console, monitor, Snabb logs). The launcher
 * makes the session on first use when it runs headless. With `docker exec -it <container> snabbvm attach`.
 */
export async function attachCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<ExitCode> {
  const program = subcommandParser('attach', "attach this terminal to the VM's tmux session (prefix d detaches)");
  if (parseSubcommand(program, argv) === 'exit') return ExitCode.Ok;
  const vm = locateVm(program.opts<{ name?: string; runDir?: string }>(), env);
  if (!process.stdin.isTTY) throw new UserError('snabbvm attach needs a terminal: use docker exec -it', ExitCode.Usage);
  const control = await connectToLauncher(vm);
  const session = await control.request<{ socket: string; session: string }>({ cmd: 'attach' }).finally(() => control.close());
  const tmux = await startProgram(['tmux', ...planTmuxAttach(session)], { env: tmuxEnv(env), inheritStdio: true });
  const exit = await tmux.exited;
  return exit.code === 0 ? ExitCode.Ok : ExitCode.Failure;
}
