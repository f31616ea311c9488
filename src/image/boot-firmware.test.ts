import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { ExitCode, UserError } from '../errors.js';
import { findOvmf } from '../qemu/ovmf.js';
import { chooseFirmware, DISK_HEAD_BYTES, diskBootSigns, isoBootSigns, probeBootSigns, readDiskBootLayout, readIsoBootLayout } from './boot-firmware.js';

const dir = mkdtempSync(path.join(tmpdir(), 'snabbvm-firmware-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const has = (program: string) => {
  try {
    execFileSync('sh', ['-c', `command -v ${program}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

/** A 64 MiB raw disk partitioned by sfdisk (the real tool's layout), with `code` in the MBR's boot code area. */
function disk(name: string, table: string, code?: Buffer): string {
  const file = path.join(dir, name);
  writeFileSync(file, '');
  execFileSync('truncate', ['-s', '64M', file]);
  execFileSync('sfdisk', ['-q', file], { input: table });
  if (code) {
    const bytes = readFileSync(file);
    code.copy(bytes, 0);
    writeFileSync(file, bytes);
  }
  return file;
}
const head = (file: string) => readFileSync(file).subarray(0, DISK_HEAD_BYTES);
const GRUB_LIKE_CODE = Buffer.from('eb639010', 'hex'); // boot.img starts with a jump
const ESP = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B';
const BIOS_BOOT = '21686148-6449-6E6F-744E-656564454649';
const LINUX = '0FC63DAF-8483-4772-8E79-3D69D8477DE4';

test('auto: a GPT disk with an EFI system partition and no MBR boot code boots by UEFI', { skip: !has('sfdisk') && 'no sfdisk' }, () => {
  const file = disk('uefi-only.raw', `label: gpt\nstart=2048, size=8M, type=${ESP}\ntype=${LINUX}\n`);
  const layout = readDiskBootLayout(head(file));
  assert.deepEqual(layout, { biosBootCode: false, efiSystemPartition: true });
  const choice = chooseFirmware('auto', diskBootSigns(layout));
  assert.equal(choice.firmware, 'uefi');
  assert.equal(choice.reason, '--boot auto: the image has an EFI system partition and no BIOS boot code');
});

test('auto: BIOS for a hybrid GPT (BIOS boot partition, ESP, MBR code, as Debian cloud images), an MBR disk, a blank disk', { skip: !has('sfdisk') && 'no sfdisk' }, () => {
  const hybrid = disk('hybrid.raw', `label: gpt\nstart=2048, size=1M, type=${BIOS_BOOT}\nsize=8M, type=${ESP}\ntype=${LINUX}\n`, GRUB_LIKE_CODE);
  const hybridChoice = chooseFirmware('auto', diskBootSigns(readDiskBootLayout(head(hybrid))));
  assert.equal(hybridChoice.firmware, 'bios');
  assert.match(hybridChoice.reason, /BIOS boot code and an EFI system partition: both would work/);

  const mbr = disk('mbr.raw', 'start=2048, type=83, bootable\n', GRUB_LIKE_CODE);
  assert.deepEqual(readDiskBootLayout(head(mbr)), { biosBootCode: true, efiSystemPartition: false });
  assert.equal(chooseFirmware('auto', diskBootSigns(readDiskBootLayout(head(mbr)))).firmware, 'bios');

  // an MBR disk whose ESP is type 0xEF, no code: UEFI
  const mbrEsp = disk('mbr-esp.raw', 'start=2048, size=8M, type=ef\ntype=83\n');
  assert.equal(chooseFirmware('auto', diskBootSigns(readDiskBootLayout(head(mbrEsp)))).firmware, 'uefi');

  const blank = chooseFirmware('auto', diskBootSigns(readDiskBootLayout(Buffer.alloc(DISK_HEAD_BYTES))));
  assert.equal(blank.firmware, 'bios');
  assert.match(blank.reason, /neither BIOS boot code nor an EFI system partition/);
  // short reads (a tiny file) are no partition table
  assert.deepEqual(readDiskBootLayout(Buffer.alloc(100)), { biosBootCode: false, efiSystemPartition: false });
});

test('a mode given is used, with a warning when the image shows it cannot boot that way', () => {
  const uefiOnly = diskBootSigns({ biosBootCode: false, efiSystemPartition: true });
  const biosOnly = diskBootSigns({ biosBootCode: true, efiSystemPartition: false });
  const bios = chooseFirmware('bios', uefiOnly);
  assert.equal(bios.firmware, 'bios');
  assert.equal(bios.warning, '--boot bios, but the image has an EFI system partition and no BIOS boot code: a BIOS will find nothing to boot; use --boot uefi or auto');
  const uefi = chooseFirmware('uefi', biosOnly);
  assert.equal(uefi.firmware, 'uefi');
  assert.match(uefi.warning!, /^--boot uefi, but the image has BIOS boot code: UEFI will likely find nothing to boot; use --boot bios or auto$/);
  assert.equal(chooseFirmware('uefi', uefiOnly).warning, undefined);
  assert.equal(chooseFirmware('bios', biosOnly).warning, undefined);
});

test('a qcow2 is read as the guest sees it, through its overlay', { skip: !(has('sfdisk') && has('qemu-img')) && 'no sfdisk or qemu-img' }, async () => {
  const raw = disk('base-uefi.raw', `label: gpt\nstart=2048, size=8M, type=${ESP}\ntype=${LINUX}\n`);
  const base = path.join(dir, 'base-uefi.qcow2');
  const overlay = path.join(dir, 'overlay.qcow2');
  execFileSync('qemu-img', ['convert', '-c', '-O', 'qcow2', raw, base]);
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', base, overlay]);
  const scratch = path.join(dir, 'sectors.bin');
  const signs = await probeBootSigns({ kind: 'disk', path: overlay, format: 'qcow2' }, scratch);
  assert.equal(chooseFirmware('auto', signs).firmware, 'uefi');
  assert.throws(() => readFileSync(scratch), /ENOENT/, 'the scratch copy is removed');
  // the raw file itself, read directly
  assert.equal(chooseFirmware('auto', await probeBootSigns({ kind: 'disk', path: raw, format: 'raw' }, scratch)).firmware, 'uefi');
});

test('ISOs: El Torito with a BIOS entry boots by BIOS, with only an EFI entry by UEFI, with none by BIOS', { skip: !has('xorriso') && 'no xorriso' }, async () => {
  const tree = path.join(dir, 'iso-tree');
  mkdirSync(tree);
  writeFileSync(path.join(tree, 'bios.img'), Buffer.alloc(2048, 1));
  writeFileSync(path.join(tree, 'efi.img'), Buffer.alloc(32 * 1024, 2));
  const iso = (name: string, boot: string[]) => {
    const file = path.join(dir, name);
    execFileSync('xorriso', ['-as', 'mkisofs', '-quiet', '-o', file, ...boot, tree], { stdio: 'ignore' });
    return file;
  };
  const read = (file: string) => (offset: number, length: number) => Promise.resolve(readFileSync(file).subarray(offset, offset + length));
  const both = iso('both.iso', ['-b', 'bios.img', '-no-emul-boot', '-eltorito-alt-boot', '-e', 'efi.img', '-no-emul-boot']);
  const efiOnly = iso('efi.iso', ['-e', 'efi.img', '-no-emul-boot']);
  const plain = iso('plain.iso', []);
  assert.deepEqual(await readIsoBootLayout(read(both)), { bios: true, efi: true });
  assert.deepEqual(await readIsoBootLayout(read(efiOnly)), { bios: false, efi: true });
  assert.deepEqual(await readIsoBootLayout(read(plain)), { bios: false, efi: false });
  assert.equal(chooseFirmware('auto', isoBootSigns({ bios: true, efi: true })).firmware, 'bios');
  const efi = chooseFirmware('auto', isoBootSigns({ bios: false, efi: true }));
  assert.equal(efi.firmware, 'uefi');
  assert.equal(efi.reason, '--boot auto: the ISO has an EFI El Torito boot entry and no BIOS El Torito boot entry');
  assert.equal(chooseFirmware('auto', isoBootSigns({ bios: false, efi: false })).firmware, 'bios');
  // the probe on the file
  assert.equal(chooseFirmware('auto', await probeBootSigns({ kind: 'iso', path: efiOnly, format: 'raw' }, '/nonexistent')).firmware, 'uefi');
});

test('OVMF missing: exit 4, one line naming the package and --boot bios', () => {
  const err = (() => {
    try {
      findOvmf(path.join(dir, 'no-ovmf'));
    } catch (e) {
      return e;
    }
    return undefined;
  })();
  assert.ok(err instanceof UserError);
  assert.equal(err.exitCode, ExitCode.HostNotReady);
  assert.match(err.message, /^UEFI boot needs OVMF, and .*OVMF_CODE_4M\.fd is missing; install Debian's ovmf package \(apt-get install ovmf\), or use --boot bios$/);
  const ovmf = path.join(dir, 'ovmf');
  mkdirSync(ovmf);
  writeFileSync(path.join(ovmf, 'OVMF_CODE_4M.fd'), '');
  writeFileSync(path.join(ovmf, 'OVMF_VARS_4M.fd'), '');
  assert.deepEqual(findOvmf(ovmf), { code: path.join(ovmf, 'OVMF_CODE_4M.fd'), varsTemplate: path.join(ovmf, 'OVMF_VARS_4M.fd') });
});
