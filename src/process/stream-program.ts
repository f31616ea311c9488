import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { ProgramError } from './run-program.js';

/** A program whose output is read as a stream (a decompressor). */
export interface StreamingProgram {
  stdout: Readable;
  /** resolves when it exited with 0; rejects with ProgramError (argv and stderr tail) otherwise */
  finished: Promise<void>;
  /** kills it (the reader gave up) */
  kill(): void;
}

/**
 * Runs a filter program with a file as its stdin and its stdout as a stream, so large outputs are never
 * buffered in memory.
 */
export function startStreamProgram(argv: readonly string[], options: { stdinPath: string }): StreamingProgram {
  const stdinFd = openSync(options.stdinPath, 'r');
  const child = spawn(argv[0]!, argv.slice(1), { stdio: [stdinFd, 'pipe', 'pipe'] });
  closeSync(stdinFd);
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => {
    stderr = (stderr + b.toString()).slice(-2000);
  });
  const finished = new Promise<void>((resolve, reject) => {
    child.on('error', (e) => reject(new ProgramError(argv, undefined, '', { cause: e })));
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new ProgramError(argv, { code, signal }, stderr));
    });
  });
  finished.catch(() => {}); // the caller awaits it after the stream ends
  return { stdout: child.stdout!, finished, kill: () => child.kill('SIGKILL') };
}
