import { readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** What the guest printed on its serial console so far (the launcher's `serial.log` in its run folder). */
export function serial(runDir: string): string {
  try {
    return readFileSync(path.join(runDir, 'serial.log'), 'latin1');
  } catch {
    return '';
  }
}

/** The first match of re on the guest's serial console, checked every second; throws with the log's tail after timeoutMs. */
export async function waitForSerial(runDir: string, re: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = serial(runDir).match(re);
    if (m) return m;
    if (Date.now() > deadline) throw new Error(`no ${re} on ${runDir}'s serial console within ${timeoutMs / 1000} s; its tail:\n${serial(runDir).slice(-2500)}`);
    await sleep(1000);
  }
}
