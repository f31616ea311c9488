import { spawn, type SpawnOptions } from 'node:child_process';
import { childEnv } from './child-env.js';

/** How a process ended. */
export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A program that failed: carries its argv and the tail of its stderr, so the cause is never lost. */
export class ProgramError extends Error {
  constructor(
    readonly argv: readonly string[],
    readonly exit: ExitInfo | undefined,
    readonly stderrTail: string,
    options?: { cause?: unknown },
  ) {
    const how = exit === undefined ? 'could not start' : exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
    const tail = stderrTail.trim().split('\n').slice(-3).join(' | ');
    super(`${argv[0]} ${how}${tail ? `: ${tail}` : ''}`, options);
    this.name = 'ProgramError';
  }
  /** ENOENT: the program is not installed */
  get notFound(): boolean {
    return (this.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
  }
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/**
 * Runs a program to completion and returns its output. Rejects with ProgramError on a non-zero exit.
 * This module and start-program.ts are the only places that spawn programs.
 */
export function runProgram(
  argv: readonly string[],
  options: { input?: string | Buffer; env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number; /** an open file the program gets as its fd 3 */ fd3?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const spawnOptions: SpawnOptions = { stdio: ['pipe', 'pipe', 'pipe', ...(options.fd3 !== undefined ? [options.fd3] : [])], env: childEnv(options.env) };
    if (options.cwd) spawnOptions.cwd = options.cwd;
    const child = spawn(argv[0]!, argv.slice(1), spawnOptions);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    let timer: NodeJS.Timeout | undefined;
    if (options.timeoutMs) timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new ProgramError(argv, undefined, '', { cause: e }));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString();
      const stderr = Buffer.concat(err).toString();
      if (code === 0) resolve({ stdout, stderr });
      else reject(new ProgramError(argv, { code, signal }, stderr.slice(-2000)));
    });
    child.stdin!.on('error', () => {}); // the program may exit without reading its input
    child.stdin!.end(options.input);
  });
}
