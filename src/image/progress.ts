import cliProgress from 'cli-progress';
import { hidePasswords, log } from '../log.js';

/** Reports the progress of a long copy: a bar on a terminal, else a plain line every few seconds. */
export interface Progress {
  /** total bytes done so far */
  update(done: number): void;
  /** the copy ended (well or not) */
  stop(): void;
}

const MiB = 2 ** 20;

/** "1.5 GiB", "300 MiB", "12 KiB". Pure. */
export function formatBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(1)} GiB`;
  if (n >= MiB) return `${(n / MiB).toFixed(n >= 100 * MiB ? 0 : 1)} MiB`;
  if (n >= 1024) return `${Math.round(n / 1024)} KiB`;
  return `${n} B`;
}

/** "45 s", "3 min 20 s", "1 h 5 min". Pure. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** One plain progress line: bytes, percentage, rate and ETA when the total is known. Pure. */
export function renderProgressLine(label: string, done: number, total: number | undefined, elapsedSec: number, startedAt = 0): string {
  const rate = elapsedSec > 0 ? (done - startedAt) / elapsedSec : 0;
  const parts = [total ? `${formatBytes(done)} of ${formatBytes(total)} (${Math.floor((done / total) * 100)}%)` : formatBytes(done)];
  if (rate > 0) parts.push(`${formatBytes(rate)}/s`);
  if (total && rate > 0) parts.push(`ETA ${formatDuration((total - done) / rate)}`);
  return `${label}: ${parts.join(', ')}`;
}

export interface ProgressOptions {
  /** bytes already there before this run (a resumed download), left out of the rate */
  resumedFrom?: number;
  quiet?: boolean;
  stream?: NodeJS.WriteStream;
  /** how often a plain line is printed when not on a terminal */
  intervalMs?: number;
}

export function startProgress(label: string, total: number | undefined, options: ProgressOptions = {}): Progress {
  const { resumedFrom = 0, stream = process.stderr } = options;
  if (options.quiet) return { update() {}, stop() {} };
  const started = Date.now();
  const intervalMs = options.intervalMs ?? 10_000;
  let last = resumedFrom;

  if (stream.isTTY && total) {
    const bar = new cliProgress.SingleBar(
      {
        stream,
        format: `snabbvm: ${hidePasswords(label)} [{bar}] {percentage}% {done} of {size}, {rate}/s, ETA {eta_formatted}`,
        barsize: 25,
        hideCursor: true,
        etaBuffer: 50,
        fps: 5,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, resumedFrom, { done: formatBytes(resumedFrom), size: formatBytes(total), rate: '-' });
    return {
      update(done) {
        const sec = (Date.now() - started) / 1000;
        bar.update(done, { done: formatBytes(done), rate: sec > 0 ? formatBytes((done - resumedFrom) / sec) : '-' });
      },
      stop() {
        bar.stop();
      },
    };
  }

  const timer = setInterval(() => log.info(renderProgressLine(label, last, total, (Date.now() - started) / 1000, resumedFrom)), intervalMs);
  timer.unref();
  return {
    update(done) {
      last = done;
    },
    stop() {
      clearInterval(timer);
    },
  };
}
