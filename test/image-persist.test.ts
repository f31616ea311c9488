/**
 * --persist and --disk-size on the VM's disk, with real qemu-img and no VM: the disk outlives the run, is reused
 * on the same base, grows but never shrinks, and is refused (clearly) on another image or a changed base. The same for
 * the --disk disks, and the UEFI variable store kept beside them.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { prepareExtraDisks } from '../src/image/extra-disks.js';
import { prepareEfiVars, prepareVmDisk, readPinnedBase } from '../src/image/persist-disk.js';
import type { BaseImage } from '../src/image/prepare-disk.js';
import { CleanupStack } from '../src/lifecycle/cleanup-stack.js';

const work = mkdtempSync(path.join(tmpdir(), 'snabbvm-persist-'));
const MiB = 2 ** 20;
const info = (disk: string) => JSON.parse(execFileSync('qemu-img', ['info', '-U', '--output=json', disk], { encoding: 'utf8' })) as Record<string, unknown>;

function makeBase(name: string, sizeMiB: number): BaseImage {
  const file = path.join(work, name);
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', file, `${sizeMiB}M`]);
  return { kind: 'disk', path: file, format: 'qcow2', virtualSize: sizeMiB * MiB };
}

test('without --persist the disk is in the run folder and goes with the run', async () => {
  const base = makeBase('a.qcow2', 32);
  const cleanup = new CleanupStack();
  const overlay = path.join(work, 'run-disk.qcow2');
  const disk = await prepareVmDisk(base, { persist: false, dataDir: work, name: 'vm', image: { kind: 'file', path: base.path }, diskSizeBytes: 64 * MiB }, { overlay }, cleanup);
  assert.equal(disk, overlay);
  assert.equal(info(disk)['virtual-size'], 64 * MiB);
  await cleanup.unwind();
  assert.equal(existsSync(overlay), false);
});

test('--persist: kept in DATA_DIR/NAME, reused, grown, never shrunk; another image or a changed base is refused', async () => {
  const base = makeBase('b.qcow2', 32);
  const dataDir = path.join(work, 'data');
  const config = { persist: true, dataDir, name: 'vm1', image: { kind: 'file' as const, path: base.path } };
  const runDisk = { overlay: path.join(work, 'unused.qcow2') };

  const cleanup = new CleanupStack();
  const disk = await prepareVmDisk(base, config, runDisk, cleanup);
  assert.equal(disk, path.join(dataDir, 'vm1', 'disk.qcow2'));
  await cleanup.unwind();
  assert.ok(existsSync(disk), 'the teardown keeps it');
  assert.equal(info(disk)['backing-filename'], base.path);
  execFileSync('qemu-io', ['-c', 'write -P 0x5a 0 1M', disk], { stdio: 'ignore' }); // the VM's writes

  // the next run: pinned to the same base, no download needed; grown by --disk-size
  assert.deepEqual(await readPinnedBase(config), base);
  assert.equal(await prepareVmDisk(base, { ...config, diskSizeBytes: 48 * MiB }, runDisk, new CleanupStack()), disk);
  assert.equal(info(disk)['virtual-size'], 48 * MiB);
  assert.match(execFileSync('qemu-io', ['-c', 'read -P 0x5a 0 1M', disk], { encoding: 'utf8' }), /read 1048576\/1048576 bytes/, 'the writes are still there');

  await assert.rejects(prepareVmDisk(base, { ...config, diskSizeBytes: 40 * MiB }, runDisk, new CleanupStack()), /--disk-size 40M is smaller than the persisted disk's 48M; disks only grow/);

  const other = makeBase('c.qcow2', 32);
  await assert.rejects(
    prepareVmDisk(other, { ...config, image: { kind: 'file', path: other.path } }, runDisk, new CleanupStack()),
    (err: Error & { exitCode?: number }) => {
      assert.equal(err.exitCode, 3);
      assert.match(err.message, /^--persist: the disk .*vm1\/disk\.qcow2 was made from .*b\.qcow2, not .*c\.qcow2; give that image again, or remove .*vm1 to start over, or give another --name$/);
      return true;
    },
  );

  // the base file is rewritten (a new version under the same name): the disk's writes no longer fit it
  utimesSync(base.path, new Date(), new Date(Date.now() + 5000));
  assert.equal(await readPinnedBase(config), undefined);
  await assert.rejects(prepareVmDisk(base, config, runDisk, new CleanupStack()), /--persist: the disk .* was made on the base .*b\.qcow2 as it was on .*, and that base has changed since/);
});

test('--persist on a URL image: a base downloaded again with the same digest still fits', async () => {
  const base = { ...makeBase('d.qcow2', 32), sourceSha256: 'aa'.repeat(32) };
  const config = { persist: true, dataDir: path.join(work, 'data'), name: 'vm2', image: { kind: 'url' as const, url: 'http://example.invalid/d.qcow2' } };
  const runDisk = { overlay: path.join(work, 'unused.qcow2') };
  await prepareVmDisk(base, config, runDisk, new CleanupStack());
  utimesSync(base.path, new Date(), new Date(Date.now() + 5000)); // the cache was emptied and the same file fetched again
  await prepareVmDisk(base, config, runDisk, new CleanupStack());
  assert.deepEqual(await readPinnedBase(config), base, 'pinned again on the new file');
  await assert.rejects(prepareVmDisk({ ...base, sourceSha256: 'bb'.repeat(32) }, config, runDisk, new CleanupStack()), /that base has changed since/);
});

test('--disk: overlays on files and blank disks, in order; with --persist kept beside the boot disk, a blank one grown, a changed one refused; UEFI variables kept', async () => {
  const data = makeBase('data.qcow2', 16);
  const raw = path.join(work, 'blank-data.raw');
  execFileSync('truncate', ['-s', '8M', raw]); // all zeros: a data disk need not look bootable
  const runDir = path.join(work, 'extra-run');
  const paths = { extraDisk: (n: number) => path.join(runDir, `disk${n}.qcow2`), efiVars: path.join(runDir, 'efi-vars.fd') };
  execFileSync('mkdir', ['-p', runDir]);
  const disks = [{ kind: 'blank' as const, sizeBytes: 24 * MiB }, { kind: 'file' as const, path: data.path }, { kind: 'file' as const, path: raw }];

  const cleanup = new CleanupStack();
  const made = await prepareExtraDisks({ disks, persist: false, dataDir: work, name: 'x' }, paths, cleanup);
  assert.deepEqual(made, [1, 2, 3].map(paths.extraDisk));
  assert.equal(info(made[0]!)['virtual-size'], 24 * MiB);
  assert.equal(info(made[0]!)['backing-filename'], undefined);
  assert.equal(info(made[1]!)['backing-filename'], data.path);
  assert.equal(info(made[2]!)['backing-filename-format'], 'raw');
  await cleanup.unwind();
  assert.deepEqual(made.filter(existsSync), [], 'gone with the run');

  const gz = path.join(work, 'data.img.gz');
  execFileSync('sh', ['-c', `gzip -c '${raw}' > '${gz}'`]);
  await assert.rejects(prepareExtraDisks({ disks: [{ kind: 'file', path: gz }], persist: false, dataDir: work, name: 'x' }, paths, new CleanupStack()), /--disk .*data\.img\.gz is gzip-compressed; unpack it first/);

  const dataDir = path.join(work, 'extra-data');
  const persist = { persist: true, dataDir, name: 'vm2' };
  const kept = await prepareExtraDisks({ ...persist, disks }, paths, new CleanupStack());
  assert.deepEqual(kept, [1, 2, 3].map((n) => path.join(dataDir, 'vm2', `disk${n}.qcow2`)));
  assert.ok(existsSync(path.join(dataDir, 'vm2', 'disk2.json')));
  const grown = await prepareExtraDisks({ ...persist, disks: [{ kind: 'blank', sizeBytes: 32 * MiB }, ...disks.slice(1)] }, paths, new CleanupStack());
  assert.equal(info(grown[0]!)['virtual-size'], 32 * MiB, 'a larger size grows a blank disk');
  await assert.rejects(prepareExtraDisks({ ...persist, disks: [disks[0]!] }, paths, new CleanupStack()), /--disk 24M is smaller than the persisted disk's 32M; disks only grow/);
  await assert.rejects(prepareExtraDisks({ ...persist, disks: [{ kind: 'blank', sizeBytes: 32 * MiB }, disks[2]!] }, paths, new CleanupStack()), /--persist: the disk .*vm2\/disk2\.qcow2 was made from .*data\.qcow2, not .*blank-data\.raw/);

  const template = path.join(work, 'OVMF_VARS_4M.fd');
  execFileSync('sh', ['-c', `printf template > '${template}'`]);
  const vars = await prepareEfiVars(template, persist, paths, new CleanupStack());
  assert.equal(vars, path.join(dataDir, 'vm2', 'efi-vars.fd'));
  execFileSync('sh', ['-c', `printf guest-wrote > '${vars}'`]);
  assert.equal(await prepareEfiVars(template, persist, paths, new CleanupStack()), vars);
  assert.equal(readFileSync(vars, 'utf8'), 'guest-wrote', 'a persisted variable store is reused, not reset');
  const runVars = new CleanupStack();
  assert.equal(await prepareEfiVars(template, { ...persist, persist: false }, paths, runVars), paths.efiVars);
  await runVars.unwind();
  assert.equal(existsSync(paths.efiVars), false);
});
