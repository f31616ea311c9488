import { readFileSync, statSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { describeQemuFailure, guestLooksStuck, looksLikeKvmFailure, parseRip, serialShowsOs, type ProgressSample } from './probe-accel.js';
import type { StartedQemu } from './start-qemu.js';

/** How a guest's first seconds under KVM went. */
export type KvmStartOutcome =
  /** it reached its operating system, wrote its disk, ran the whole watch, or powered off (or a stop was asked for) */
  | { how: 'progressed' }
  /** no new serial output and the same instruction pointer for a while */
  | { how: 'stuck'; reason: string; restartable: boolean }
  /** QEMU exited without a guest shutdown */
  | { how: 'died'; reason: string; restartable: boolean };

export interface KvmWatchTimes {
  /** how often the guest is looked at */
  intervalMs: number;
  /** this many looks in a row without progress make a stall */
  stallSamples: number;
  /** a guest still in its firmware after this long, but moving, is left alone */
  maxMs: number;
}

export const KVM_WATCH_TIMES: KvmWatchTimes = { intervalMs: 2000, stallSamples: 5, maxMs: 30_000 };

/** The disk's size and mtime: QEMU opening a qcow2 overlay changes neither, a guest writing to it changes both. */
export function diskStamp(disk: string): string {
  try {
    const s = statSync(disk);
    return `${s.size}:${s.mtimeMs}`;
  } catch {
    return 'missing';
  }
}

/**
 * Watches a guest's first seconds under KVM, until it reaches its OS or writes its disk (KVM works), QEMU dies,
 * or the guest stops making progress (a broken nested KVM can show SeaBIOS and "Welcome to GRUB", then hang).
 * `restartable` says whether a restart under TCG would lose nothing (no OS output on the serial console, the disk
 * unchanged since `diskBefore`) and, for a death, whether it looks like KVM's doing.
 */
export async function watchKvmStart(
  qemu: StartedQemu,
  files: { serialLog: string; disk: string; diskBefore: string },
  options: { signal?: AbortSignal; times?: KvmWatchTimes } = {},
): Promise<KvmStartOutcome> {
  const times = options.times ?? KVM_WATCH_TIMES;
  const stopped = new Promise<void>((resolve) => options.signal?.addEventListener('abort', () => resolve(), { once: true }));
  const t0 = Date.now();
  let exited = false;
  void qemu.ended.then(() => (exited = true));
  const untouched = () => diskStamp(files.disk) === files.diskBefore && !serialShowsOs(readText(files.serialLog));
  const samples: ProgressSample[] = [];
  for (;;) {
    await Promise.race([sleep(times.intervalMs), qemu.ended, stopped]);
    if (options.signal?.aborted) return { how: 'progressed' }; // a stop was asked for: not ours to judge
    if (exited) {
      const end = await qemu.ended;
      if (end.how !== 'crashed') return { how: 'progressed' };
      const restartable = looksLikeKvmFailure(end.exit, end.qemuLogTail) && untouched();
      return { how: 'died', reason: `under KVM, ${describeQemuFailure(end.exit, end.qemuLogTail)}`, restartable };
    }
    if (!untouched()) return { how: 'progressed' };
    // a vCPU wedged inside KVM may never come out to answer: that counts as the same place as before
    const registers = await Promise.race([qemu.qmp.hmp('info registers').catch(() => undefined), sleep(times.intervalMs, 'no answer')]);
    if (exited) continue;
    const rip = registers === 'no answer' ? registers : registers === undefined ? undefined : parseRip(registers);
    samples.push({ rip, serialBytes: readText(files.serialLog).length });
    if (guestLooksStuck(samples, times.stallSamples)) {
      const stalledSec = Math.round(((times.stallSamples - 1) * times.intervalMs) / 1000);
      const last = lastLine(readText(files.serialLog));
      const after = last ? `after "${last}"` : 'with no console output at all';
      return { how: 'stuck', reason: `the guest stopped under KVM ${after}: no new output and the same instruction pointer for ${stalledSec} s`, restartable: untouched() };
    }
    if (Date.now() - t0 >= times.maxMs) return { how: 'progressed' };
  }
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'latin1');
  } catch {
    return '';
  }
}

/** The serial console's last line with text, without terminal escapes, cut to a readable length. */
export function lastLine(serialText: string): string {
  const lines = serialText
    .replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '')
    .split(/[\r\n]+/)
    .map((l) => l.replace(/[^\x20-\x7e]/g, '').trim())
    .filter((l) => l !== '');
  const last = lines.at(-1) ?? '';
  return last.length > 60 ? `${last.slice(0, 57)}...` : last;
}
