import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { childEnv } from './child-env.js';
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
  const child = spawn(argv[0]!, argv.slice(1), { stdio: [stdinFd, stdoutFd, 'pipe'], env: childEnv() });
  closeSync(stdinFd);
  closeSync(stdoutFd);
  return exitOf(child, argv);
}

/** Resolves when the program exited 0; rejects with a ProgramError holding the tail of its stderr otherwise. */
function exitOf(child: ChildProcess, argv: readonly string[]): Promise<void> {
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

/** A filter program fed through its stdin by the caller, writing its stdout into a file. */
export interface FilterToFile {
  stdin: Writable;
  /** resolves when the program exited 0; rejects with ProgramError otherwise */
  done: Promise<void>;
  /** SIGKILL; resolves when it has exited */
  kill(): Promise<void>;
}

/**
 * Starts a filter program whose input the caller streams (a download as it arrives) and whose output goes straight
 * into a file, with no copy back through Node. The program ends on its own when stdin closes (also if the launcher dies).
 */
export function startProgramStdinToFile(argv: readonly string[], options: { stdoutPath: string }): FilterToFile {
  const stdoutFd = openSync(options.stdoutPath, 'w');
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', stdoutFd, 'pipe'], env: childEnv() });
  closeSync(stdoutFd);
  child.stdin!.on('error', () => {}); // EPIPE when the program fails early: `done` says why
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const done = exitOf(child, argv);
  return {
    stdin: child.stdin!,
    done,
    async kill() {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) child.kill('SIGKILL');
      if (child.pid !== undefined) await closed;
    },
  };
}
