import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { ProgramError } from './run-program.js';

/**
 * Runs a filter program from one file into another, with no copy through Node: a decompressor writing straight
 * into the cache (xz and zstd --sparse then leave the zero runs of a raw image as holes).
 */
export function runProgramFileToFile(argv: readonly string[], options: { stdinPath: string; stdoutPath: string }): Promise<void> {
  const stdinFd = openSync(options.stdinPath, 'r');
  let stdoutFd: number;
  try {
    stdoutFd = openSync(options.stdoutPath, 'w');
  } catch (err) {
    closeSync(stdinFd);
    throw err;
  }
  const child = spawn(argv[0]!, argv.slice(1), { stdio: [stdinFd, stdoutFd, 'pipe'] });
  closeSync(stdinFd);
  closeSync(stdoutFd);
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => {
    stderr = (stderr + b.toString()).slice(-2000);
  });
  return new Promise<void>((resolve, reject) => {
    child.on('error', (e) => reject(new ProgramError(argv, undefined, '', { cause: e })));
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new ProgramError(argv, { code, signal }, stderr));
    });
  });
}
