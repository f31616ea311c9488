import { mkdir, readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { hostError } from '../errors.js';
import type { CleanupStack } from '../lifecycle/cleanup-stack.js';
import { log } from '../log.js';
import { startProgram } from '../process/start-program.js';

/**
 * Starts dnsmasq and waits until it has bound its sockets (it logs "started" then), or fails with its own
 * words. Its stop is registered at once; an unexpected exit while the VM runs is reported.
 */
export async function startDnsmasq(argv: string[], dir: string, cleanup: CleanupStack, timeoutMs = 10_000): Promise<void> {
  await mkdir(dir, { recursive: true });
  const logFile = `${dir}/dnsmasq.log`;
  const program = await startProgram(argv, { logFile });
  let stopping = false;
  cleanup.defer('stop dnsmasq', () => {
    stopping = true;
    return program.stop(2000);
  });
  let exited = false;
  let started = false;
  void program.exited.then(async (exit) => {
    exited = true;
    if (started && !stopping) log.warn(`dnsmasq exited (${exit.signal ?? `code ${exit.code}`}); the VM gets no more DHCP or DNS: ${await tail(logFile)}`);
  });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = await readFile(logFile, 'utf8').catch(() => '');
    if (/^dnsmasq(\[\d+\])?: started, version/m.test(text)) {
      started = true;
      return;
    }
    if (exited || Date.now() > deadline) {
      throw hostError(`dnsmasq ${exited ? 'failed to start' : 'did not start in time'}: ${await tail(logFile)}`);
    }
    await sleep(50);
  }
}

async function tail(file: string): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.trim().split('\n').slice(-3).join(' | ');
}
