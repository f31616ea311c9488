import net from 'node:net';
import { ExitCode, UserError } from '../errors.js';
import { locateVm, noVmError, parseSubcommand, subcommandParser } from './locate-vm.js';

/**
 * `snabbvm console`: the VM's serial console on this terminal, through the launcher's serial hub, so any number
 * of consoles (and the tmux `vm` window) share it. With `docker exec -it <container> snabbvm console`.
 */
export async function consoleCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<ExitCode> {
  // Ctrl-] leaves by default, as in telnet and virsh console
  const program = subcommandParser('console', "attach this terminal to the VM's serial console (Ctrl-] leaves)").option(
    '--escape <key>',
    "the key that leaves: a control key as ^X, or 'none'",
    '^]',
  ).option('--resize', "first type `stty rows R cols C` at the guest's shell prompt, with this terminal's size");
  if (parseSubcommand(program, argv) === 'exit') return ExitCode.Ok;
  const opts = program.opts<{ name?: string; runDir?: string; escape: string; resize?: boolean }>();
  const escape = parseEscapeKey(opts.escape);
  const vm = locateVm(opts, env);

  const socket = await new Promise<net.Socket>((resolve, reject) => {
    const s = net.createConnection(vm.paths.consoleSocket);
    s.once('connect', () => resolve(s));
    s.once('error', () => reject(noVmError(vm, vm.paths.consoleSocket)));
  });
  const stdin = process.stdin;
  const interactive = Boolean(stdin.isTTY);
  if (interactive) {
    stdin.setRawMode(true);
    const leave = escape === undefined ? '' : `; ${describeKey(escape)} leaves`;
    process.stderr.write(`snabbvm: serial console of VM '${vm.name}'${leave}\r\n`);
  }
  // A serial line carries no window size. A shell takes it from stty; a getty or a full-screen program asks the
  // terminal by itself (the hub passes one answer per question).
  if (opts.resize) {
    const size = process.stdout.isTTY ? { rows: process.stdout.rows, columns: process.stdout.columns } : undefined;
    if (size) socket.write(`stty rows ${size.rows} cols ${size.columns}\r`);
    else process.stderr.write('snabbvm: --resize needs a terminal on stdout; nothing sent\r\n');
  }

  return new Promise<ExitCode>((resolve) => {
    let leaving = false;
    const finish = (code: ExitCode, message?: string) => {
      if (interactive) stdin.setRawMode(false);
      stdin.pause();
      stdin.destroy();
      if (message) process.stderr.write(`\r\nsnabbvm: ${message}\r\n`);
      socket.destroy();
      resolve(code);
    };
    socket.on('data', (chunk: Buffer) => process.stdout.write(chunk));
    socket.on('error', () => {});
    socket.on('close', () => finish(ExitCode.Ok, leaving ? undefined : `the console of VM '${vm.name}' closed: the VM has stopped`));
    stdin.on('data', (data: Buffer) => {
      const at = escape === undefined || !interactive ? -1 : data.indexOf(escape);
      if (at >= 0) {
        if (at > 0) socket.write(data.subarray(0, at));
        leaving = true;
        finish(ExitCode.Ok);
        return;
      }
      socket.write(data);
    });
    // piped input: send it all, show what comes back for a moment, then leave
    stdin.on('end', () => {
      leaving = true;
      setTimeout(() => finish(ExitCode.Ok), 1000);
    });
  });
}

/** '^]' → 0x1d, '^a' → 0x01, 'none' → undefined. */
export function parseEscapeKey(text: string): number | undefined {
  if (text === 'none') return undefined;
  const m = /^\^([@-_a-z])$/i.exec(text);
  if (!m) throw new UserError(`--escape '${text}' is not valid; give a control key such as ^] or ^a, or 'none'`, ExitCode.Usage);
  return m[1]!.toUpperCase().charCodeAt(0) & 0x1f;
}

function describeKey(code: number): string {
  return `Ctrl-${String.fromCharCode(code + 0x40)}`;
}
