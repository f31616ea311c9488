/**
 * Booting the real cloud image (TCG) from a URL served by a local HTTP server, and from a zstd-compressed
 * local file: both reach the login prompt. Between them, runs that start QEMU without waiting for a boot show
 * that a cached second run downloads nothing and that --persist keeps the VM's disk.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cloudImagePath, whyNoVmTests } from './helpers/fixtures.js';
import { startHttpServer, type TestHttpServer } from './helpers/http-server.js';
import { runLauncher, startLauncher as startLauncherRun, type LauncherRun } from './helpers/launcher.js';

const skip = whyNoVmTests();
const work = mkdtempSync(path.join(tmpdir(), 'snabbvm-image-boot-'));
const cacheDir = path.join(work, 'cache');
const dataDir = path.join(work, 'data');
const common = (name: string) => ['--accel', 'tcg', '--net', 'user', '--vnc', 'none', '--web', 'none', '--console', 'stdio', '--stop-timeout', '180', '--name', name, '--run-dir', path.join(work, 'run', name), '--cache-dir', cacheDir];
const diskInfo = (disk: string) => JSON.parse(execFileSync('qemu-img', ['info', '-U', '--output=json', disk], { encoding: 'utf8' })) as Record<string, unknown>;

/** A zstd copy of the fixture image, made once per fixture version (keyed by its path and mtime). */
function compressedFixture(): string {
  const image = cloudImagePath();
  const dir = path.join(process.env.SNABBVM_FIXTURE_CACHE ?? '/var/cache/snabbvm-fixtures', 'image-tests');
  const out = path.join(dir, `${path.basename(image)}-${Math.floor(statSync(image).mtimeMs)}.zst`);
  if (!existsSync(out)) {
    mkdirSync(dir, { recursive: true });
    execFileSync('bash', ['-c', `zstd -q -T0 -c '${image}' > '${out}.tmp'`]);
    renameSync(`${out}.tmp`, out);
  }
  return out;
}

/**
 * The serial login prompt; or systemd's "Login Prompts" target, for when a starved host (TCG on shared cores) makes
 * ttyS0's device unit time out and the serial getty never starts.
 */
const loginPrompt = /login: |Reached target .*Login Prompts/;

let server: TestHttpServer | undefined;
/** launchers still running when a test fails are stopped, so no VM outlives the test */
const launchers: LauncherRun[] = [];
const startLauncher = (args: string[]) => {
  const run = startLauncherRun(args);
  launchers.push(run);
  return run;
};
after(async () => {
  const running = launchers.filter((run) => run.child.exitCode === null && run.child.signalCode === null);
  for (const run of running) run.child.kill('SIGTERM'); // the launcher stops its QEMU and cleans up
  await Promise.all(running.map((run) => run.exited));
  await server?.close();
  rmSync(work, { recursive: true, force: true });
}, { timeout: 300_000 });
// the fixture build (about 90 s the first time) and its zstd copy are not part of the boot timeouts
before(() => {
  if (!skip) compressedFixture();
}, { timeout: 900_000 });

describe('booting images from anywhere', { skip }, () => {
  test('from a URL to the login prompt; a cached run downloads nothing; --persist keeps and reuses the disk', { timeout: 1_200_000 }, async () => {
    server = await startHttpServer();
    server.serve('/debian-12.qcow2', cloudImagePath());
    const url = server.url('/debian-12.qcow2');

    const vm = startLauncher([...common('img-url'), '--disk-size', '3G', url]);
    await vm.waitFor(/is running \(tcg/, 120_000);
    assert.match(vm.stderr(), /downloaded http:\/\/127\.0\.0\.1:\d+\/debian-12\.qcow2: [\d.]+ MiB, sha256 [0-9a-f]{64}/);
    const overlay = diskInfo(path.join(work, 'run', 'img-url', 'disk.qcow2'));
    assert.ok(String(overlay['backing-filename']).startsWith(cacheDir), 'the overlay sits on the cached download');
    assert.equal(overlay['virtual-size'], 3 * 2 ** 30, '--disk-size grew the disk');
    await vm.waitFor(loginPrompt, 720_000);
    vm.child.kill('SIGTERM');
    assert.equal((await vm.exited).code, 0, vm.stderr());
    assert.equal(server.bodyRequests('/debian-12.qcow2').length, 1);

    // a second run: revalidated (304), no body; --persist puts the disk in the data folder
    const before = server.requests.length;
    const second = startLauncher([...common('img-url'), '--persist', '--data-dir', dataDir, '--stop-timeout', '0', url]);
    await second.waitFor(/is running/, 120_000);
    assert.deepEqual(server.requests.slice(before).map((r) => r.status), [304], 'a cached second run makes no body request');
    const persisted = path.join(dataDir, 'img-url', 'disk.qcow2');
    assert.equal(diskInfo(persisted)['backing-filename'], overlay['backing-filename']);
    second.child.kill('SIGTERM');
    await second.exited;
    assert.ok(existsSync(persisted), 'the persisted disk survives the run');

    // a third run reuses the persisted disk on its pinned base, with no request at all
    const count = server.requests.length;
    const third = startLauncher([...common('img-url'), '--persist', '--data-dir', dataDir, '--stop-timeout', '0', '--disk-size', '4G', url]);
    await third.waitFor(/is running/, 120_000);
    assert.match(third.stderr(), /reusing the persisted disk/);
    assert.equal(server.requests.length, count, 'no request: the persisted disk pins its base');
    assert.equal(diskInfo(persisted)['virtual-size'], 4 * 2 ** 30, '--disk-size grows a persisted disk');
    third.child.kill('SIGTERM');
    await third.exited;

    // the persisted disk belongs to that image: another one is refused, clearly
    const other = await runLauncher([...common('img-url'), '--persist', '--data-dir', dataDir, cloudImagePath()]);
    assert.equal(other.code, 3, other.stderr);
    assert.match(other.stderr, /--persist: the disk .*img-url\/disk\.qcow2 was made from http:\/\/127\.0\.0\.1:\d+\/debian-12\.qcow2, not .*; give that image again, or remove .* to start over/);
  });

  test('from a zstd-compressed local file to the login prompt; unpacked into the cache, nothing written next to it', { timeout: 1_200_000 }, async () => {
    const u = path.join(work, 'u');
    mkdirSync(u);
    const image = path.join(u, 'debian-12.img.zst');
    try {
      linkSync(compressedFixture(), image);
    } catch {
      copyFileSync(compressedFixture(), image);
    }
    const vm = startLauncher([...common('img-zst'), image]);
    await vm.waitFor(/is running \(tcg/, 180_000);
    assert.match(vm.stderr(), /unpacking image .*debian-12\.img\.zst \(zstd\) into the cache/);
    const overlay = diskInfo(path.join(work, 'run', 'img-zst', 'disk.qcow2'));
    assert.ok(String(overlay['backing-filename']).startsWith(cacheDir), 'the overlay sits on the unpacked copy in the cache');
    assert.equal(overlay['backing-filename-format'], 'qcow2');
    await vm.waitFor(loginPrompt, 720_000);
    vm.child.kill('SIGTERM');
    assert.equal((await vm.exited).code, 0, vm.stderr());
    assert.deepEqual(readdirSync(u), ['debian-12.img.zst'], 'nothing written into /u');
  });
});
