import { readFileSync } from 'node:fs';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { hostError } from '../errors.js';
import type { CleanupStack } from '../lifecycle/cleanup-stack.js';
import { log } from '../log.js';
import { startProgram, type StartedProgram } from '../process/start-program.js';

/** Restarts allowed within RESTART_WINDOW_MS before the launcher gives up on dnsmasq (it keeps dying). */
const MAX_RESTARTS = 5;
const RESTART_WINDOW_MS = 60_000;

/**
 * The unprivileged user dnsmasq drops to once it has its sockets and lease file: `dnsmasq`, which Debian's
 * dnsmasq-base package creates, else `nobody`.
 */
export function dnsmasqUser(passwd = '/etc/passwd'): string {
  try {
    if (/^dnsmasq:/m.test(readFileSync(passwd, 'utf8'))) return 'dnsmasq';
  } catch {}
  return 'nobody';
}

/**
 * Starts dnsmasq and waits until it has bound its sockets (it logs "started" then), or fails with its own
 * words. Its stop is registered at once. If it dies while the VM runs, it is started again (a few times a
 * minute at most), so the guest can still renew its lease and resolve names.
 */
export async function startDnsmasq(argv: string[], dir: string, cleanup: CleanupStack, timeoutMs = 10_000): Promise<void> {
  await mkdir(dir, { recursive: true });
  const logFile = `${dir}/dnsmasq.log`;
  let stopping = false;
  let current: StartedProgram | undefined;
  let restarting: Promise<void> | undefined;
  cleanup.defer('stop dnsmasq', async () => {
    stopping = true;
    await restarting;
    await current?.stop(2000);
  });
  const restarts: number[] = [];

  const supervise = (program: StartedProgram) => {
    void program.exited.then((exit) => {
      if (stopping || program !== current) return;
      restarting = (async () => {
        const how = exit.signal ?? `code ${exit.code}`;
        const now = Date.now();
        while (restarts.length > 0 && restarts[0]! < now - RESTART_WINDOW_MS) restarts.shift();
        if (restarts.length >= MAX_RESTARTS) {
          log.error(`dnsmasq exited (${how}) ${MAX_RESTARTS + 1} times within a minute; not restarting it: the VM gets no more DHCP or DNS: ${await tail(logFile)}`);
          return;
        }
        restarts.push(now);
        log.warn(`dnsmasq exited (${how}); restarting it: ${await tail(logFile)}`);
        await sleep(500 * restarts.length);
        if (stopping) return;
        try {
          current = await launchAndRecord();
          log.info(`dnsmasq restarted (pid ${current.pid})`);
          supervise(current);
        } catch (err) {
          log.error(`${(err as Error).message}; the VM gets no more DHCP or DNS`);
        }
      })().finally(() => (restarting = undefined));
    });
  };
  const launchAndRecord = async () => {
    const program = await launch(argv, logFile, timeoutMs);
    cleanup.record('stop dnsmasq', { kill: program.pid, cmdlineHas: logFile.replace(/\/dnsmasq\.log$/, '') });
    return program;
  };
  current = await launchAndRecord();
  supervise(current);
}

/** One dnsmasq, returned once it logged "started" (after what the log held before); stopped again if it fails. */
async function launch(argv: string[], logFile: string, timeoutMs: number): Promise<StartedProgram> {
  const logStart = await stat(logFile).then((s) => s.size, () => 0);
  const program = await startProgram(argv, { logFile });
  let exited = false;
  void program.exited.then(() => (exited = true));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = (await readFile(logFile).catch(() => Buffer.alloc(0))).subarray(logStart).toString();
    if (/^dnsmasq(\[\d+\])?: started, version/m.test(text)) return program;
    if (exited || Date.now() > deadline) {
      await program.stop(0);
      throw hostError(`dnsmasq ${exited ? 'failed to start' : 'did not start in time'}: ${await tail(logFile)}`);
    }
    await sleep(50);
  }
}

async function tail(file: string): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.trim().split('\n').slice(-3).join(' | ');
}
