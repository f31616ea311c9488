import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Polls `what` (sync or async) until it gives a truthy value, which it returns, or throws after timeoutMs. The
 * label may be a function, so it can show the state at the time of failure.
 */
export async function waitUntil<T>(what: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs: number, label: string | (() => string), pollMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await what();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof label === 'function' ? label() : label}`);
    await sleep(pollMs);
  }
}

/** Progress lines on stderr with the seconds since the test file started, so a slow run shows where it is. */
export function progressLog(name: string): (what: string) => void {
  const started = Date.now();
  return (what) => void process.stderr.write(`${name} [${Math.round((Date.now() - started) / 1000)} s]: ${what}\n`);
}
