import { spawn } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
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
  const child = spawn(argv[0]!, argv.slice(1), {
    stdio: options.inheritStdio ? 'inherit' : ['ignore', logFd, logFd],
    env: options.env ?? process.env,
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
