import { spawn } from 'node:child_process';
import { accessSync, closeSync, constants, openSync } from 'node:fs';
import path from 'node:path';
import { childEnv } from './child-env.js';
import { ProgramError, type ExitInfo } from './run-program.js';

/** A long-running program. stop() is safe to call twice. */
export interface StartedProgram {
  readonly pid: number;
  readonly argv: readonly string[];
  /** resolves when the process has exited, however that happened */
  readonly exited: Promise<ExitInfo>;
  /** SIGTERM, then SIGKILL after graceMs; resolves when it has exited */
  stop(graceMs?: number): Promise<ExitInfo>;
}

/**
 * Starts a program in the background with its output appended to logFile (or discarded).
 * Rejects if it cannot be spawned at all (not installed).
 */
export async function startProgram(
  argv: readonly string[],
  options: { logFile?: string; env?: NodeJS.ProcessEnv; cwd?: string; /** the launcher's own terminal (tmux attach) */ inheritStdio?: boolean } = {},
): Promise<StartedProgram> {
  const logFd = options.logFile ? openSync(options.logFile, 'a') : 'ignore';
  const [command, ...args] = withParentDeathSignal(argv);
  const child = spawn(command!, args, {
    stdio: options.inheritStdio ? 'inherit' : ['ignore', logFd, logFd],
    env: childEnv(options.env),
    cwd: options.cwd,
  });
  if (typeof logFd === 'number') closeSync(logFd);

  const exited = new Promise<ExitInfo>((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal }));
  });
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', (e) => reject(new ProgramError(argv, undefined, '', { cause: e })));
  });

  let exitedYet = false;
  void exited.then(() => (exitedYet = true));
  return {
    pid: child.pid!,
    argv,
    exited,
    async stop(graceMs = 5000) {
      if (!exitedYet) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
      return exited;
    },
  };
}

/**
 * Programs started by the launcher must not outlive it: in a container they die with PID 1 anyway, but a launcher
 * killed outside one (a test timeout, kill -9) would leave QEMU, Snabb or dnsmasq running. `setpriv --pdeathsig`
 * asks the kernel to send SIGTERM when the launcher dies; it execs the program, so the pid stays the program's.
 * Only used when both setpriv and the program are found, so a missing program still fails to spawn (ENOENT).
 */
function withParentDeathSignal(argv: readonly string[]): readonly string[] {
  const setpriv = findOnPath('setpriv');
  const program = findOnPath(argv[0]!);
  return setpriv && program ? [setpriv, '--pdeathsig', 'SIGTERM', '--', program, ...argv.slice(1)] : argv;
}

export function findOnPath(name: string): string | undefined {
  const candidates = name.includes('/') ? [name] : (process.env.PATH ?? '').split(':').map((dir) => path.join(dir, name));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {}
  }
  return undefined;
}
