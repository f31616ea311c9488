import { log } from '../log.js';
import { startProgram, type StartedProgram } from '../process/start-program.js';

export interface TerminalAttachOptions {
  /** the full argv of `tmux ... attach-session` */
  attachArgv: string[];
  env: NodeJS.ProcessEnv;
  /** makes sure the session exists (recreates it if the user killed it); throws if tmux can't */
  ensureSession: () => Promise<void>;
  /** resolves when the VM has ended: no more re-attaching then */
  vmEnded: Promise<unknown>;
  name: string;
}

export interface TerminalAttach {
  /** ends the tmux client and gives the terminal back; safe to call twice */
  stop(): Promise<void>;
}

/**
 * Attaches the launcher's terminal (docker run -it: PID 1's own tty) to the tmux session, and keeps doing so.
 * The launcher stays the supervisor: tmux is its child, so detaching (prefix d) or losing the terminal never stops
 * the VM. After a detach the launcher holds the terminal in raw mode (so Ctrl-C is a keystroke, never SIGINT) and
 * attaches again at the next key; `docker attach` reconnects the same terminal, so a key press there gets tmux back.
 */
export function startTerminalAttach(options: TerminalAttachOptions): TerminalAttach {
  let stopping = false;
  let client: StartedProgram | undefined;
  let wake: (() => void) | undefined;
  let vmEnded = false;
  void options.vmEnded.then(() => {
    vmEnded = true;
    wake?.();
  });

  const loop = (async () => {
    while (!stopping && !vmEnded) {
      try {
        await options.ensureSession();
        client = await startProgram(options.attachArgv, { env: options.env, inheritStdio: true });
      } catch (err) {
        log.warn(`cannot attach the terminal to tmux (${(err as Error).message}); the VM runs on without it (docker exec -it <container> snabbvm console)`);
        return;
      }
      await client.exited;
      client = undefined;
      if (stopping || vmEnded) return;
      const key = await waitForKey(`\r\nsnabbvm: detached from tmux; VM '${options.name}' keeps running. Press any key to attach again (docker: ctrl-p ctrl-q leaves the container running).\r\n`);
      if (key === 'eof') {
        log.info('the terminal is gone; the VM runs on (docker attach, or docker exec -it <container> snabbvm attach)');
        return;
      }
    }
  })();

  /** raw mode, so Ctrl-C and Ctrl-\ are keys and not signals; resolves on a key, on stop, or at end of input */
  function waitForKey(hint: string): Promise<'key' | 'stop' | 'eof'> {
    const stdin = process.stdin;
    const stdout = process.stdout;
    return new Promise((resolve) => {
      const showHint = () => stdout.write(hint);
      const done = (how: 'key' | 'stop' | 'eof') => {
        stdin.off('data', onData);
        stdin.off('end', onEnd);
        stdin.off('error', onEnd);
        stdout.off('resize', showHint);
        wake = undefined;
        stdin.pause();
        if (stdin.isTTY) stdin.setRawMode(false);
        resolve(how);
      };
      const onData = () => done('key');
      const onEnd = () => done('eof');
      wake = () => done('stop');
      if (stdin.isTTY) stdin.setRawMode(true);
      stdin.on('data', onData);
      stdin.once('end', onEnd);
      stdin.once('error', onEnd);
      // docker attach resizes the terminal: say again what to do on the fresh screen
      stdout.on('resize', showHint);
      showHint();
      stdin.resume();
    });
  }

  let stopped: Promise<void> | undefined;
  return {
    stop() {
      stopped ??= (async () => {
        stopping = true;
        wake?.();
        await client?.stop(2000);
        await loop;
        process.stdin.pause();
        (process.stdin as { unref?: () => void }).unref?.();
      })();
      return stopped;
    },
  };
}
