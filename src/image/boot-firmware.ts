import { rm } from 'node:fs/promises';
import type { BootMode } from '../config/config.js';
import { runProgram } from '../process/run-program.js';
import { readAt } from './read-at.js';

export type Firmware = 'bios' | 'uefi';
export interface FirmwareChoice {
  firmware: Firmware;
  /** why, for the log: what the image showed */
  reason: string;
}

/** How a disk can boot, from its first sectors as the guest sees them. */
export interface DiskBootLayout {
  /** a 0x55AA signature and code in the MBR's boot code area: something a BIOS runs */
  biosBootCode: boolean;
  /** an EFI system partition, in the GPT or the MBR (type 0xEF) */
  efiSystemPartition: boolean;
}

/** How an ISO can boot: its El Torito boot catalog's bootable entries. */
export interface IsoBootLayout {
  bios: boolean;
  efi: boolean;
}

const ESP_GUID = 'c12a7328-f81f-11d2-ba4b-00a0c93ec93b';
const SECTOR = 512;
/** enough for the MBR, the GPT header and the usual 128 entries from LBA 2 */
export const DISK_HEAD_BYTES = 64 * 1024;

/** A GPT GUID as text: the first three fields little-endian, the rest as stored. */
function guidAt(buf: Buffer, at: number): string {
  const hex = (start: number, end: number) => buf.subarray(at + start, at + end).toString('hex');
  const le = (start: number, end: number) => Buffer.from(buf.subarray(at + start, at + end)).reverse().toString('hex');
  return `${le(0, 4)}-${le(4, 6)}-${le(6, 8)}-${hex(8, 10)}-${hex(10, 16)}`;
}

/** Reads the MBR and the GPT (512-byte sectors) from a disk's first bytes. Pure; a short or odd head is no ESP. */
export function readDiskBootLayout(head: Buffer): DiskBootLayout {
  const signature = head.length >= SECTOR && head[510] === 0x55 && head[511] === 0xaa;
  const biosBootCode = signature && head.subarray(0, 440).some((b) => b !== 0);
  let efiSystemPartition = false;
  if (signature) {
    for (let i = 0; i < 4; i++) if (head[446 + 16 * i + 4] === 0xef) efiSystemPartition = true;
  }
  if (head.length >= 2 * SECTOR && head.subarray(SECTOR, SECTOR + 8).toString('latin1') === 'EFI PART') {
    const entriesLba = Number(head.readBigUInt64LE(SECTOR + 72));
    const count = head.readUInt32LE(SECTOR + 80);
    const size = head.readUInt32LE(SECTOR + 84);
    if (size >= 128) {
      for (let i = 0; i < count; i++) {
        const at = entriesLba * SECTOR + i * size;
        if (at + 16 > head.length) break; // entries beyond what was read: the usual layout has them all in it
        if (guidAt(head, at) === ESP_GUID) efiSystemPartition = true;
      }
    }
  }
  return { biosBootCode, efiSystemPartition };
}

/**
 * Reads an ISO's El Torito boot catalog: which platforms have a bootable entry (x86 BIOS = 0, EFI = 0xEF).
 * `read(offset, length)` reads the ISO; a volume without El Torito has neither.
 */
export async function readIsoBootLayout(read: (offset: number, length: number) => Promise<Buffer>): Promise<IsoBootLayout> {
  const layout = { bios: false, efi: false };
  const record = await read(17 * 2048, 2048);
  if (record.length < 0x4b || record[0] !== 0 || record.subarray(1, 6).toString('latin1') !== 'CD001') return layout;
  if (!record.subarray(7, 30).toString('latin1').startsWith('EL TORITO SPECIFICATION')) return layout;
  const catalog = await read(record.readUInt32LE(0x47) * 2048, 2048);
  if (catalog.length < 64 || catalog[0] !== 1) return layout;
  const mark = (platform: number) => {
    if (platform === 0) layout.bios = true;
    if (platform === 0xef) layout.efi = true;
  };
  // the validation entry names the initial entry's platform
  if (catalog[32] === 0x88) mark(catalog[1]!);
  let at = 64;
  while (at + 32 <= catalog.length && (catalog[at] === 0x90 || catalog[at] === 0x91)) {
    const last = catalog[at] === 0x91;
    const platform = catalog[at + 1]!;
    const entries = catalog.readUInt16LE(at + 2);
    at += 32;
    for (let n = 0; n < entries && at + 32 <= catalog.length; at += 32) {
      if (catalog[at] === 0x44) continue; // an extension of the entry before
      if (catalog[at] === 0x88) mark(platform);
      n++;
    }
    if (last) break;
  }
  return layout;
}

/** What an image shows it can boot with, and how to say so. */
export interface BootSigns {
  bios: boolean;
  uefi: boolean;
  /** 'image' or 'ISO' */
  what: string;
  biosSign: string;
  uefiSign: string;
}

export const diskBootSigns = (layout: DiskBootLayout): BootSigns => ({
  bios: layout.biosBootCode,
  uefi: layout.efiSystemPartition,
  what: 'image',
  biosSign: 'BIOS boot code',
  uefiSign: 'an EFI system partition',
});

export const isoBootSigns = (layout: IsoBootLayout): BootSigns => ({
  bios: layout.bios,
  uefi: layout.efi,
  what: 'ISO',
  biosSign: 'a BIOS El Torito boot entry',
  uefiSign: 'an EFI El Torito boot entry',
});

/**
 * The firmware for --boot. auto: UEFI when the image can only boot by UEFI (an EFI system partition and no BIOS
 * boot code); BIOS otherwise, since a hybrid image boots either way and did so under SeaBIOS before. A mode given against
 * what the image shows gets a warning, so a VM that cannot boot says why. Pure.
 */
export function chooseFirmware(mode: BootMode, signs: BootSigns): FirmwareChoice & { warning?: string } {
  const { what, biosSign, uefiSign } = signs;
  const shows = signs.uefi && !signs.bios ? `the ${what} has ${uefiSign} and no ${biosSign.replace(/^an? /, '')}`
    : signs.bios ? `the ${what} has ${biosSign}${signs.uefi ? ` and ${uefiSign}: both would work` : ''}`
    : `the ${what} has neither ${biosSign} nor ${uefiSign}`;
  if (mode === 'auto') return { firmware: signs.uefi && !signs.bios ? 'uefi' : 'bios', reason: `--boot auto: ${shows}` };
  const choice: FirmwareChoice = { firmware: mode, reason: `--boot ${mode}` };
  if (mode === 'bios' && !signs.bios && signs.uefi) return { ...choice, warning: `--boot bios, but ${shows}: a BIOS will find nothing to boot; use --boot uefi or auto` };
  if (mode === 'uefi' && !signs.uefi) return { ...choice, warning: `--boot uefi, but ${shows}: UEFI will likely find nothing to boot; use --boot bios or auto` };
  return choice;
}

/**
 * What a disk image or an ISO shows about how it boots. A disk is read as the guest sees it, through its qcow2
 * layers (with `qemu-img dd` into `scratch`, removed after); an ISO is raw.
 */
export async function probeBootSigns(image: { kind: 'disk' | 'iso'; path: string; format: string }, scratch: string): Promise<BootSigns> {
  if (image.kind === 'iso') return isoBootSigns(await readIsoBootLayout((offset, length) => readAt(image.path, offset, length)));
  if (image.format === 'raw') return diskBootSigns(readDiskBootLayout(await readAt(image.path, 0, DISK_HEAD_BYTES)));
  try {
    await runProgram(['qemu-img', 'dd', '-f', image.format, '-O', 'raw', `bs=${DISK_HEAD_BYTES}`, 'count=1', `if=${image.path}`, `of=${scratch}`]);
    return diskBootSigns(readDiskBootLayout(await readAt(scratch, 0, DISK_HEAD_BYTES)));
  } finally {
    await rm(scratch, { force: true });
  }
}
