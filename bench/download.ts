/**
 * Image download throughput, side by side in one run, from one loopback server (busybox httpd: C, sendfile):
 *   1. a 1 GiB image: snabbvm's download (SHA-256 while streaming, temp file, rename, probe) vs `curl -o`;
 *   2. the same image as .xz: snabbvm's download while unpacking (SHA-256, .part for resume, xz into the
 *      cache) vs `curl | xz -d > file`;
 *   3. a cached second run (ETag revalidation, no body).
 * Prints the medians and the ratios (higher is better for snabbvm; the target is ≥ 0.9×), and the load average
 * before each round: the figures mean little on a busy machine.
 * Run (after `npx tsc -p .`): node dist/bench/download.js [rounds]
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, closeSync, writeSync, renameSync, rmSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { downloadOptions, resolveUrl } from '../src/image/resolve-base-image.js';
import { setQuiet } from '../src/log.js';

const rounds = Math.max(1, Number(process.argv[2] ?? 3));
const benchDir = '/var/cache/snabbvm-bench';
const www = path.join(benchDir, 'www');
const image = path.join(www, 'image-1g.raw');
const imageXz = path.join(www, 'image-1g.raw.xz');
const work = mkdtempSync(path.join(tmpdir(), 'snabbvm-bench-download-'));

/**
 * 1 GiB that looks like a disk: an MBR signature, then alternating MiBs of random data and of zeros (about what a
 * cloud image's raw form holds), so xz has work to do but does not shrink it to nothing. Made once, cached.
 */
function ensureFiles(): void {
  mkdirSync(www, { recursive: true });
  if (!existsSync(image)) {
    console.error('bench: writing a 1 GiB image (once)...');
    const fd = openSync(`${image}.tmp`, 'w');
    const mib = Buffer.alloc(2 ** 20);
    for (let i = 0; i < 1024; i++) {
      if (i % 2 === 0) randomFillSync(mib);
      else mib.fill(0);
      if (i === 0) mib.writeUInt16LE(0xaa55, 510);
      writeSync(fd, mib);
    }
    closeSync(fd);
    renameSync(`${image}.tmp`, image);
  }
  if (!existsSync(imageXz)) {
    console.error('bench: compressing it with xz -T2 -1 (once)...');
    execFileSync('bash', ['-c', `xz -T2 -1 -c '${image}' > '${imageXz}.tmp'`]);
    renameSync(`${imageXz}.tmp`, imageXz);
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function timed(fn: () => Promise<unknown> | unknown): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

function sh(script: string): void {
  const r = spawnSync('bash', ['-c', `set -o pipefail; ${script}`], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (r.status !== 0) throw new Error(`failed: ${script}`);
}

async function main(): Promise<void> {
  setQuiet(true);
  ensureFiles();
  const port = 18000 + (process.pid % 1000);
  const server = spawn('busybox', ['httpd', '-f', '-p', `127.0.0.1:${port}`, '-h', www], { stdio: 'ignore' });
  await sleep(300);
  const url = (f: string) => `http://127.0.0.1:${port}/${path.basename(f)}`;
  const options = downloadOptions({}, true);
  const results = { curl: [] as number[], ours: [] as number[], curlXz: [] as number[], oursXz: [] as number[], cached: [] as number[] };
  const out = path.join(work, 'out');
  const loads: string[] = [];

  try {
    for (let round = 1; round <= rounds; round++) {
      loads.push(loadavg().map((l) => l.toFixed(2)).join(' '));
      // alternate who goes first, so neither always gets the warmer page cache
      const pairs: [keyof typeof results, () => Promise<number>][] = [
        ['curl', () => timed(() => sh(`curl -sS --fail -o '${out}' '${url(image)}'`))],
        ['ours', () => timed(() => resolveUrl(url(image), { cacheDir: path.join(work, `cache-${round}`) }, options))],
      ];
      const xzPairs: [keyof typeof results, () => Promise<number>][] = [
        ['curlXz', () => timed(() => sh(`curl -sS --fail '${url(imageXz)}' | xz -d > '${out}'`))],
        ['oursXz', () => timed(() => resolveUrl(url(imageXz), { cacheDir: path.join(work, `cachexz-${round}`) }, options))],
      ];
      for (const set of [pairs, xzPairs]) {
        for (const [name, run] of round % 2 ? set : [...set].reverse()) {
          // the last run's gigabyte is written out first, so its writeback does not slow down the next one
          execFileSync('sync');
          results[name].push(await run());
          rmSync(out, { force: true });
        }
      }
      results.cached.push(await timed(() => resolveUrl(url(image), { cacheDir: path.join(work, `cache-${round}`) }, options)));
      rmSync(path.join(work, `cache-${round}`), { recursive: true, force: true });
      rmSync(path.join(work, `cachexz-${round}`), { recursive: true, force: true });
      console.error(`bench: round ${round} of ${rounds} done (load average before it: ${loads.at(-1)})`);
    }
  } finally {
    server.kill();
    rmSync(work, { recursive: true, force: true });
  }

  const rate = (sec: number) => `${(1024 / sec).toFixed(0)} MiB/s`;
  // each round's pair ran back to back under about the same load: its ratio says more than the medians' on a noisy machine
  for (let i = 0; i < rounds; i++) {
    const r = (k: keyof typeof results) => results[k][i]!;
    console.log(
      `round ${i + 1} (load ${loads[i]}): curl -o ${r('curl').toFixed(2)} s, snabbvm ${r('ours').toFixed(2)} s, ratio ${(r('curl') / r('ours')).toFixed(2)}x; ` +
        `curl | xz -d ${r('curlXz').toFixed(2)} s, snabbvm ${r('oursXz').toFixed(2)} s, ratio ${(r('curlXz') / r('oursXz')).toFixed(2)}x`,
    );
  }
  const m = Object.fromEntries(Object.entries(results).map(([k, v]) => [k, median(v)])) as Record<keyof typeof results, number>;
  console.log(`download of 1 GiB over loopback, median of ${rounds} (busybox httpd); load average (1, 5, 15 min) before each round: ${loads.join(' | ')}, after: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  console.log(`  curl -o                          ${m.curl.toFixed(2)} s  ${rate(m.curl)}`);
  console.log(`  snabbvm (sha256, temp, rename)   ${m.ours.toFixed(2)} s  ${rate(m.ours)}`);
  console.log(`  ratio (curl time / snabbvm time) ${(m.curl / m.ours).toFixed(2)}x`);
  console.log(`the same as .xz (${(Number(execFileSync('stat', ['-c', '%s', imageXz], { encoding: 'utf8' })) / 2 ** 20).toFixed(0)} MiB), unpacked to 1 GiB:`);
  console.log(`  curl | xz -d                     ${m.curlXz.toFixed(2)} s  ${rate(m.curlXz)}`);
  console.log(`  snabbvm (unpack while download)  ${m.oursXz.toFixed(2)} s  ${rate(m.oursXz)}`);
  console.log(`  ratio                            ${(m.curlXz / m.oursXz).toFixed(2)}x`);
  console.log(`cached second run (revalidation, 304): ${(m.cached * 1000).toFixed(0)} ms  (${(m.curl / m.cached).toFixed(0)}x faster than downloading)`);
}

await main();
