import { spawn, type ChildProcess } from 'node:child_process';
import { after } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { repoRoot } from './fixtures.js';

export const launcherPath = `${repoRoot}dist/src/cli/main.js`;

/** A launcher run by a test: its output is collected, and it can be waited on. */
export interface LauncherRun {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** resolves with the first match of re in stdout+stderr, or rejects after timeoutMs with the output so far */
  waitFor(re: RegExp, timeoutMs: number): Promise<RegExpMatchArray>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Launchers still running when a test file ends (a test failed or timed out before stopping its VM) are killed,
 * so a failure never leaves a VM behind to slow the tests after it. Their QEMU dies with them (pdeathsig).
 */
const running = new Set<ChildProcess>();
const killRunning = () => {
  for (const child of running) child.kill('SIGKILL');
};
// Under the test runner, at the end of the file. Benches use these helpers too: for them an `after` hook would
// make a test run of their own (stray runner output), so they kill at exit.
if (process.env.NODE_TEST_CONTEXT) after(killRunning);
else process.on('exit', killRunning);

/** `wrapper` runs the launcher through another command, e.g. ['ip', 'netns', 'exec', NS] (exec'ing, so the pid is the launcher's). */
export function startLauncher(args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; wrapper?: string[] } = {}): LauncherRun {
  const command = [...(options.wrapper ?? []), process.execPath, launcherPath, ...args];
  const child = spawn(command[0]!, command.slice(1), {
    env: { ...process.env, ...options.env },
    cwd: options.cwd ?? repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  child.on('exit', () => running.delete(child));
  let out = '';
  let err = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  let done = false;
  void exited.then(() => (done = true));
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    async waitFor(re, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const m = (out + err).match(re);
        if (m) return m;
        if (done || Date.now() > deadline) {
          throw new Error(`${done ? 'launcher exited' : 'timed out'} before ${re}\n--- stderr:\n${err}\n--- stdout (tail):\n${out.slice(-3000)}`);
        }
        await sleep(200);
      }
    },
  };
}

/** Runs the launcher to its end (for bad-input cases). */
export async function runLauncher(args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; wrapper?: string[] } = {}) {
  const run = startLauncher(args, options);
  const { code } = await run.exited;
  return { code, stdout: run.stdout(), stderr: run.stderr() };
}

/** Processes whose command line mentions `needle` (QEMU runs as snabbvm-<name>). */
export async function processesMatching(needle: string): Promise<string[]> {
  const { readdirSync, readFileSync } = await import('node:fs');
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmd.includes(needle) && Number(pid) !== process.pid) found.push(`${pid}: ${cmd}`);
    } catch {}
  }
  return found;
}
