/**
 * Boot firmware and disks on real TCG boots. The UEFI-only fixture (GPT, an EFI system partition, no BIOS boot
 * code) boots under --boot auto with OVMF, with a blank --disk and a --disk file after the boot disk, kept with
 * --persist; the BIOS fixture boots with its disks on IDE. The guest reports what it sees on its serial console.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cloudImagePath, uefiImagePath, whyNoUefiTests, whyNoVmTests } from './helpers/fixtures.js';
import { startLauncher } from './helpers/launcher.js';

const skip = whyNoVmTests() ?? whyNoUefiTests();
const work = mkdtempSync(path.join(tmpdir(), 'snabbvm-boot-disks-'));
after(() => rmSync(work, { recursive: true, force: true }));
const common = (name: string) => ['--accel', 'tcg', '--net', 'user', '--vnc', 'none', '--web', 'none', '--console', 'stdio', '--stop-timeout', '180', '--name', name, '--run-dir', path.join(work, 'run', name), '-u', 'user-data.yaml'];
const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

/** What the guest reports, then it powers itself off. It also writes over the --disk file's disk (/dev/vdc). */
const USER_DATA = `#cloud-config
runcmd:
  - echo "BD-EFI $(test -d /sys/firmware/efi && echo yes || echo no)" > /dev/ttyS0
  - echo "BD-ROOT $(findmnt -no SOURCE /)" > /dev/ttyS0
  - for d in /sys/block/[vs]d?; do echo "BD-DISK $(basename $d) $(cat $d/size)" > /dev/ttyS0; done
  - test -b /dev/vdc && echo "BD-VDC $(head -c 20 /dev/vdc)" > /dev/ttyS0
  - test -b /dev/vdc && echo overwritten-by-the-guest | dd of=/dev/vdc conv=notrunc,fsync status=none
  - echo "BD-DONE" > /dev/ttyS0
power_state:
  mode: poweroff
  delay: now
`;
const DATA_MARK = 'snabbvm-data-disk-01';

/**
 * The guest's BD- lines: key → values (BD-DISK has one per disk). Not anchored at the line's start: the console
 * is shared with systemd and the kernel, whose output can land just before a line of ours.
 */
function report(stdout: string): Map<string, string[]> {
  const lines = new Map<string, string[]>();
  for (const m of stdout.matchAll(/(BD-[A-Z]+) ?(.*?)\r?$/gm)) lines.set(m[1]!, [...(lines.get(m[1]!) ?? []), m[2]!.trim()]);
  return lines;
}
/** every console line with a BD- marker in it, as it came: for a failure's message */
const said = (stdout: string) => stdout.split('\n').filter((l) => l.includes('BD-')).map((l) => l.trim()).join(' | ');

describe('boot firmware and disks', { skip }, () => {
  // the fixture builds (about 90 s + 30 s the first time) are not part of the boot timeouts
  before(() => {
    if (skip) return;
    cloudImagePath();
    uefiImagePath();
    writeFileSync(path.join(work, 'user-data.yaml'), USER_DATA);
  }, { timeout: 900_000 });

  test('a UEFI-only image boots under --boot auto with OVMF; --disk 1G is /dev/vdb, a --disk file /dev/vdc; the files never change; --persist keeps it all', { timeout: 900_000 }, async (t) => {
    const image = uefiImagePath();
    const dataFile = path.join(work, 'data.img');
    const data = Buffer.alloc(4 * 2 ** 20);
    data.write(DATA_MARK);
    writeFileSync(dataFile, data);
    const before = { image: sha256(image), data: sha256(dataFile) };
    const dataDir = path.join(work, 'data');
    const args = [...common('bd-uefi'), '--boot', 'auto', '--disk', '1G', '--disk', 'data.img', '--persist', '--data-dir', dataDir, image];

    const started = Date.now();
    const vm = startLauncher(args, { cwd: work });
    await vm.waitFor(/is running \(tcg/, 120_000);
    assert.match(vm.stderr(), /firmware: UEFI \(OVMF\), --boot auto: the image has an EFI system partition and no BIOS boot code/);
    await vm.waitFor(/BD-DONE|Dropping to a shell/, 600_000);
    const booted = Date.now() - started;
    assert.equal((await vm.exited).code, 0, vm.stderr());
    t.diagnostic(`UEFI boot under TCG to the cloud-init marker: ${(booted / 1000).toFixed(0)} s; to the guest's power-off: ${((Date.now() - started) / 1000).toFixed(0)} s`);

    const seen = report(vm.stdout());
    assert.deepEqual(seen.get('BD-EFI'), ['yes'], `the guest runs on UEFI: /sys/firmware/efi exists; the guest said: ${said(vm.stdout())}`);
    assert.deepEqual(seen.get('BD-ROOT'), ['/dev/vda2'], 'the root is the GPT image\'s second partition');
    const disks = seen.get('BD-DISK') ?? [];
    assert.ok(disks.includes(`vdb ${2 ** 30 / 512}`), `--disk 1G is /dev/vdb: ${disks.join(', ')}`);
    assert.ok(disks.includes(`vdc ${data.length / 512}`), `the --disk file is /dev/vdc: ${disks.join(', ')}`);
    assert.deepEqual(seen.get('BD-VDC'), [DATA_MARK], 'the guest reads the file\'s content on /dev/vdc');
    assert.deepEqual({ image: sha256(image), data: sha256(dataFile) }, before, 'the image and the --disk file are unchanged (the guest wrote to /dev/vdc)');

    // --persist: the boot disk, both extra disks and the UEFI variables are kept; a second run reuses them
    for (const file of ['disk.qcow2', 'disk1.qcow2', 'disk2.qcow2', 'efi-vars.fd']) assert.ok(existsSync(path.join(dataDir, 'bd-uefi', file)), `${file} kept`);
    const again = startLauncher([...args.slice(0, -1), '--stop-timeout', '0', image], { cwd: work });
    await again.waitFor(/is running \(tcg/, 120_000);
    assert.equal(again.stderr().match(/reusing the persisted disk/g)?.length, 3, again.stderr());
    again.child.kill('SIGTERM');
    await again.exited;
  });

  test('--boot bios on the UEFI-only image says at start that a BIOS will find nothing to boot', { timeout: 300_000 }, async () => {
    const vm = startLauncher([...common('bd-bios'), '--boot', 'bios', '--stop-timeout', '0', uefiImagePath()], { cwd: work });
    await vm.waitFor(/is running/, 120_000);
    assert.match(vm.stderr(), /--boot bios, but the image has an EFI system partition and no BIOS boot code: a BIOS will find nothing to boot; use --boot uefi or auto/);
    assert.match(vm.stderr(), /firmware: BIOS \(SeaBIOS\), --boot bios/);
    vm.child.kill('SIGTERM');
    await vm.exited;
  });

  // IDE rather than SATA: Debian's cloud kernel (the fixture's) has ata_piix but no AHCI driver
  test('--disk-bus ide: the BIOS image boots with its root on /dev/sda and a blank --disk as /dev/sdb', { timeout: 900_000 }, async (t) => {
    const started = Date.now();
    const vm = startLauncher([...common('bd-ide'), '--disk-bus', 'ide', '--disk', '64M', cloudImagePath()], { cwd: work });
    await vm.waitFor(/is running \(tcg/, 120_000);
    assert.match(vm.stderr(), /firmware: BIOS \(SeaBIOS\), --boot auto: the image has BIOS boot code/);
    await vm.waitFor(/BD-DONE|Dropping to a shell/, 600_000);
    assert.doesNotMatch(vm.stdout(), /Dropping to a shell/, 'the initramfs found the root disk');
    t.diagnostic(`BIOS boot on IDE under TCG to the cloud-init marker: ${((Date.now() - started) / 1000).toFixed(0)} s`);
    assert.equal((await vm.exited).code, 0, vm.stderr());
    const seen = report(vm.stdout());
    assert.deepEqual(seen.get('BD-EFI'), ['no'], `the guest runs on a BIOS; the guest said: ${said(vm.stdout())}`);
    assert.deepEqual(seen.get('BD-ROOT'), ['/dev/sda1']);
    assert.ok(seen.get('BD-DISK')?.includes(`sdb ${(64 * 2 ** 20) / 512}`), `--disk 64M is /dev/sdb: ${seen.get('BD-DISK')?.join(', ')}`);
  });
});
