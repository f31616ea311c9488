import readline from 'node:readline';
import { Option } from 'commander';
import { ExitCode } from '../errors.js';
import type { ControlClient } from '../lifecycle/control-client.js';
import { connectToLauncher, locateVm, parseSubcommand, subcommandParser } from './locate-vm.js';

/**
 * `snabbvm monitor [command ...]`: the QEMU human monitor, through the launcher's QMP connection
 * (human-monitor-command), so it works alongside the tmux `monitor` window and the web console.
 * With a command: runs it and prints the answer. Without: a REPL with history; Ctrl-D leaves.
 */
export async function monitorCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<ExitCode> {
  const program = subcommandParser('monitor', 'the QEMU monitor: run one command, or a prompt (Ctrl-D leaves)')
    .argument('[command...]', 'a monitor command, e.g. info status')
    .addOption(new Option('--keep-open', 'Ctrl-D does not leave (the tmux monitor window)').hideHelp())
    .usage('[options] [command ...]');
  if (parseSubcommand(program, argv) === 'exit') return ExitCode.Ok;
  const opts = program.opts<{ name?: string; runDir?: string; keepOpen?: boolean }>();
  const vm = locateVm(opts, env);
  const control = await connectToLauncher(vm);

  const words = program.args;
  if (words.length > 0) {
    try {
      process.stdout.write(normalize(await control.request<string>({ cmd: 'hmp', line: words.join(' ') })));
      return ExitCode.Ok;
    } catch (err) {
      process.stderr.write(`snabbvm: error: ${(err as Error).message}\n`);
      return ExitCode.Failure;
    } finally {
      control.close();
    }
  }
  process.stdout.write(`QEMU monitor of VM '${vm.name}'. 'help' lists the commands; ${opts.keepOpen ? '' : 'Ctrl-D leaves. '}Stop the VM with snabbvm stop.\n`);
  const history: string[] = [];
  let vmGone = false;
  void control.closed.then(() => (vmGone = true));
  while ((await repl(control, vm.name, history)) === 'closed' && opts.keepOpen && process.stdin.isTTY && !vmGone) {
    process.stdout.write('(this window stays open: Ctrl-b d detaches from tmux)\n');
  }
  control.close();
  return ExitCode.Ok;
}

/** One prompt session; 'closed' when the input ended (Ctrl-D), 'exit' when the user typed exit or the VM went away. */
async function repl(control: ControlClient, name: string, history: string[]): Promise<'closed' | 'exit'> {
  const rl = readline.createInterface({ input: process.stdin, output: process.stdout, prompt: '(qemu) ', history, historySize: 1000 });
  rl.prompt();
  const session = { ended: 'closed' as 'closed' | 'exit', active: true };
  const onVmGone = () => {
    if (!session.active) return;
    session.ended = 'exit';
    process.stdout.write(`\nsnabbvm: VM '${name}' has stopped\n`);
    rl.close();
  };
  void control.closed.then(onVmGone);
  // Ctrl-C clears the line, as in a shell; it never reaches QEMU or stops the VM
  rl.on('SIGINT', () => {
    rl.write(null, { ctrl: true, name: 'u' });
    process.stdout.write('^C\n');
    rl.prompt();
  });
  for await (const input of rl) {
    const line = input.trim();
    if (line === 'exit') {
      session.ended = 'exit';
      break;
    }
    if (/^(q|quit)$/.test(line)) {
      process.stdout.write("'quit' would end QEMU at once, without a guest shutdown: use snabbvm stop, or type 'quit!' if you mean it.\n");
    } else if (line !== '') {
      try {
        process.stdout.write(normalize(await control.request<string>({ cmd: 'hmp', line: line === 'quit!' ? 'quit' : line })));
      } catch (err) {
        if (session.ended === 'exit') break;
        process.stdout.write(`error: ${(err as Error).message}\n`);
      }
    }
    rl.prompt();
  }
  session.active = false;
  rl.close();
  return session.ended;
}

/** HMP answers with \r\n and sometimes without a final newline. */
function normalize(text: string): string {
  const t = text.replace(/\r\n/g, '\n');
  return t === '' || t.endsWith('\n') ? t : `${t}\n`;
}
