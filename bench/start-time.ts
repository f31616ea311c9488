/**
 * Time to `running` on QMP for a 4 GiB local image, side by side in one run:
 *   - the launcher (a qcow2 overlay on the original, so start does not grow with the image),
 *   - copying the image first and booting the copy, as the original tool did,
 *   - a hand-written qemu-system-x86_64 command on the same image (snapshot=on, so it is not written).
 * Prints the medians and the two ratios. Run: node dist/bench/start-time.js [rounds]
 */
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { QmpClient } from '../src/qemu/qmp-client.js';
import { launcherPath } from '../test/helpers/launcher.js';

const rounds = Number(process.argv[2] ?? 3);
const cacheDir = '/var/cache/snabbvm-bench';
const image = path.join(cacheDir, 'random-4g.raw');
const work = mkdtempSync(path.join(tmpdir(), 'snabbvm-bench-'));

/** A fully written 4 GiB raw image of random data (made once, cached). */
function ensureImage(): void {
  if (existsSync(image)) return;
  mkdirSync(cacheDir, { recursive: true });
  console.error('bench: writing a 4 GiB image (once)...');
  execFileSync('dd', ['if=/dev/urandom', `of=${image}.tmp`, 'bs=4M', 'count=1024', 'status=none']);
  execFileSync('mv', [`${image}.tmp`, image]);
}

function dropCaches(): void {
  try {
    execFileSync('sh', ['-c', 'sync; echo 3 > /proc/sys/vm/drop_caches']);
  } catch {
    // not root, or not allowed in this container: the page cache then favours the copy
  }
}

async function waitRunning(qmpSocket: string): Promise<void> {
  const qmp = await QmpClient.connect(qmpSocket, 120_000);
  try {
    for (;;) {
      const s = await qmp.execute<{ status: string }>('query-status');
      if (s.status === 'running') return;
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    qmp.close();
  }
}

/** qemu by hand, as a user would type it */
function handQemu(file: string, format: string, qmpSocket: string, extra: string) {
  return spawn('qemu-system-x86_64', [
    '-accel', 'tcg', '-m', '1024', '-display', 'none', '-nodefaults',
    '-drive', `file=${file},format=${format},if=virtio${extra}`,
    '-qmp', `unix:${qmpSocket},server=on,wait=off`,
  ], { stdio: 'ignore' });
}

async function timeLauncher(): Promise<number> {
  const runDir = path.join(work, 'launcher');
  const t0 = performance.now();
  const child = spawn(process.execPath, [launcherPath, '--accel', 'tcg', '--net', 'none', '--vnc', 'none', '--web', 'none', '--console', 'none', '-q', '--stop-timeout', '0', '--name', 'bench-start', '--run-dir', runDir, image], { stdio: 'ignore' });
  await waitRunning(path.join(runDir, 'qmp-tools.sock'));
  const t = performance.now() - t0;
  child.kill('SIGTERM');
  await new Promise((r) => child.on('exit', r));
  return t;
}

async function timeCopyFirst(): Promise<number> {
  const copy = path.join(work, 'copy.raw');
  const sock = path.join(work, 'copy.qmp');
  const t0 = performance.now();
  execFileSync('cp', [image, copy]);
  const child = handQemu(copy, 'raw', sock, '');
  await waitRunning(sock);
  const t = performance.now() - t0;
  child.kill('SIGKILL');
  await new Promise((r) => child.on('exit', r));
  rmSync(copy, { force: true });
  rmSync(sock, { force: true });
  return t;
}

async function timeHand(): Promise<number> {
  const sock = path.join(work, 'hand.qmp');
  const t0 = performance.now();
  const child = handQemu(image, 'raw', sock, ',snapshot=on');
  await waitRunning(sock);
  const t = performance.now() - t0;
  child.kill('SIGKILL');
  await new Promise((r) => child.on('exit', r));
  rmSync(sock, { force: true });
  return t;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

ensureImage();
const results: Record<string, number[]> = { launcher: [], copyFirst: [], hand: [] };
for (let i = 0; i < rounds; i++) {
  // interleaved, each from a cold page cache, so machine noise hits all three alike
  dropCaches();
  results.launcher!.push(await timeLauncher());
  dropCaches();
  results.copyFirst!.push(await timeCopyFirst());
  dropCaches();
  results.hand!.push(await timeHand());
}
rmSync(work, { recursive: true, force: true });
const m = Object.fromEntries(Object.entries(results).map(([k, v]) => [k, median(v)])) as Record<string, number>;
console.log(`start to QMP running, 4 GiB raw image, median of ${rounds}:`);
console.log(`  launcher (overlay)    ${m.launcher!.toFixed(0)} ms`);
console.log(`  copy first (original) ${m.copyFirst!.toFixed(0)} ms`);
console.log(`  hand-written qemu     ${m.hand!.toFixed(0)} ms`);
console.log(`ratio launcher / copy-first: ${(m.launcher! / m.copyFirst!).toFixed(3)}  (below 1: the overlay is faster)`);
console.log(`ratio launcher / hand-written qemu: ${(m.launcher! / m.hand!).toFixed(3)}  (the launcher's own overhead)`);
