import { existsSync, readdirSync, readFileSync, readlinkSync, rmSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { hostError } from '../errors.js';
import { log } from '../log.js';
import type { ExitInfo } from '../process/run-program.js';
import { startProgram, type StartedProgram } from '../process/start-program.js';

/** Snabb's shared-memory root: one folder per process, with its counters and DMA page links. */
export const SNABB_SHM_ROOT = '/var/run/snabb';

export type SnabbState = 'starting' | 'running' | 'restarting' | 'stopped';

export interface SupervisedSnabb {
  readonly label: string;
  readonly state: SnabbState;
  /** the running Snabb's pid, if one runs */
  readonly pid: number | undefined;
  readonly restarts: number;
  /** how the last Snabb ended, in words */
  readonly lastExit: string | undefined;
  /** stops Snabb for good and removes what it left; safe to call twice */
  stop(): Promise<void>;
}

/** Delay before restart n (0-based): 1 s, 2 s, 4 s ... 30 s; back to 1 s after a run of a minute or more. Pure. */
export function restartDelayMs(consecutiveFailures: number): number {
  return Math.min(30_000, 1000 * 2 ** Math.min(consecutiveFailures, 5));
}
const STABLE_RUN_MS = 60_000;

export function describeExit(exit: ExitInfo): string {
  return exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
}

export interface SuperviseOptions {
  /** what the messages call it: 'Snabb for eth1 (0000:05:00.0)' */
  label: string;
  argv: string[];
  logFile: string;
  /** called on every state change, so the launcher's state.json can follow */
  onChange: () => void;
  /** how long the first start may take to show its engine running */
  startTimeoutMs?: number;
}

/**
 * Starts Snabb and keeps it running: when it exits, it is restarted with backoff, and QEMU (the vhost-user
 * server) lets it reconnect, so the guest's link comes back without a reboot. The first start must reach a
 * running engine, or this throws with the tail of Snabb's log (exit 4).
 */
export async function superviseSnabb(o: SuperviseOptions): Promise<SupervisedSnabb> {
  let state: SnabbState = 'starting';
  let current: StartedProgram | undefined;
  let restarts = 0;
  let lastExit: string | undefined;
  let stopping = false;
  let wake: (() => void) | undefined;
  const set = (s: SnabbState) => {
    state = s;
    o.onChange();
  };

  const first = await startProgram(o.argv, { logFile: o.logFile });
  current = first;
  let firstExit: ExitInfo | undefined;
  void first.exited.then((exit) => (firstExit = exit));
  const engineRunning = await waitForEngine(o.logFile, o.startTimeoutMs ?? 20_000, () => firstExit !== undefined);
  if (!engineRunning) {
    const how = firstExit ? describeExit(firstExit) : `did not start its engine within ${(o.startTimeoutMs ?? 20_000) / 1000} s`;
    await first.stop(2000);
    await removeLeftovers(first.pid);
    throw hostError(`${o.label} ${how} at start: ${logTail(o.logFile)} (log: ${o.logFile})`);
  }
  set('running');

  const loop = (async () => {
    let failures = 0;
    for (;;) {
      const runStarted = Date.now();
      const exit = await current!.exited;
      const pid = current!.pid;
      current = undefined;
      await removeLeftovers(pid);
      if (stopping) return;
      lastExit = describeExit(exit);
      failures = Date.now() - runStarted >= STABLE_RUN_MS ? 0 : failures + 1;
      const delay = restartDelayMs(Math.max(0, failures - 1));
      restarts++;
      const error = snabbError(readLog(o.logFile));
      log.warn(`${o.label} ${lastExit}; restarting it in ${delay / 1000} s (restart ${restarts})${error ? `: ${error}` : ''}`);
      set('restarting');
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, delay).unref();
      });
      wake = undefined;
      if (stopping) return;
      try {
        current = await startProgram(o.argv, { logFile: o.logFile });
        set('running');
      } catch (err) {
        log.warn(`${o.label} could not be restarted: ${(err as Error).message}`);
        return;
      }
    }
  })();

  let stopped: Promise<void> | undefined;
  return {
    label: o.label,
    get state() {
      return state;
    },
    get pid() {
      return current?.pid;
    },
    get restarts() {
      return restarts;
    },
    get lastExit() {
      return lastExit;
    },
    stop() {
      stopped ??= (async () => {
        stopping = true;
        wake?.();
        await current?.stop(5000);
        await loop;
        set('stopped');
      })();
      return stopped;
    },
  };
}

/** Whether Snabb's log shows the engine running (its first load report) before it exits or the time is up. */
async function waitForEngine(logFile: string, timeoutMs: number, hasExited: () => boolean): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && !hasExited()) {
    try {
      if (/^load: time:/m.test(readFileSync(logFile, 'utf8'))) return true;
    } catch {}
    await sleep(100);
  }
  return false;
}

function readLog(logFile: string): string {
  try {
    return readFileSync(logFile, 'utf8');
  } catch {
    return '';
  }
}

/** The last meaningful lines of Snabb's log, as one line. */
export function logTail(logFile: string): string {
  return summarizeSnabbLog(readLog(logFile));
}

/** Pure: an error's first lines when there is a traceback, else the last lines that are not reports. */
export function summarizeSnabbLog(text: string): string {
  return snabbError(text) ?? (meaningfulLines(text).slice(-3).join(' | ').slice(0, 500) || '(empty log)');
}

/** Pure: the lines before the last Lua traceback in the log, if there is one. */
export function snabbError(text: string): string | undefined {
  const lines = meaningfulLines(text);
  const trace = lines.lastIndexOf('Stack Traceback');
  return trace > 0 ? lines.slice(Math.max(0, trace - 4), trace).join(' | ').slice(0, 500) : undefined;
}

function meaningfulLines(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !/^(load: time:|engine: |link report:|\d+ sent on )/.test(l));
}

/**
 * Snabb forks a "[snabb sup]" process that removes /var/run/snabb/<pid> and Snabb's DMA huge page files once
 * Snabb is gone, however it ended. Give it a moment; if it was killed too, do its work.
 */
export async function removeLeftovers(pid: number, shmRoot = SNABB_SHM_ROOT): Promise<void> {
  const dir = path.join(shmRoot, String(pid));
  for (let i = 0; i < 30 && existsSync(dir); i++) await sleep(100);
  if (!existsSync(dir)) return;
  const dmaDir = path.join(dir, 'group/dma');
  try {
    for (const link of readdirSync(dmaDir)) {
      try {
        unlinkSync(readlinkSync(path.join(dmaDir, link)));
      } catch {}
    }
  } catch {}
  rmSync(dir, { recursive: true, force: true });
}
