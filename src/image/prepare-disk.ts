import { formatSize } from '../config/size.js';
import { inputError } from '../errors.js';
import type { CleanupStack } from '../lifecycle/cleanup-stack.js';
import { runProgram } from '../process/run-program.js';
import { rm } from 'node:fs/promises';

/** A bootable base the VM's disk sits on: a local or cached qcow2/raw, or an ISO. */
export type BaseImage = (
  | { kind: 'disk'; path: string; format: string; virtualSize: number }
  | { kind: 'iso'; path: string }
) & {
  /** for an image from a URL: the SHA-256 of the download it was made from, which pins its content */
  sourceSha256?: string;
};

/** What a writable disk is made on: a base image, or nothing (a blank --disk SIZE). */
export type DiskBase = BaseImage | { kind: 'blank' };

export const DEFAULT_ISO_DISK_BYTES = 10 * 2 ** 30;

/** The qemu-img command that makes the VM's writable disk. Pure. */
export function planDisk(base: DiskBase, diskPath: string, diskSizeBytes: number | undefined): string[] {
  if (base.kind !== 'disk') {
    return ['qemu-img', 'create', '-q', '-f', 'qcow2', diskPath, String(diskSizeBytes ?? DEFAULT_ISO_DISK_BYTES)];
  }
  if (diskSizeBytes !== undefined && diskSizeBytes < base.virtualSize) {
    throw inputError(
      `--disk-size ${formatSize(diskSizeBytes)} is smaller than the image's ${formatSize(base.virtualSize)}; disks only grow: give at least ${formatSize(base.virtualSize)} or leave --disk-size out`,
    );
  }
  // An overlay backed by the original: QEMU opens the original read-only, and start time does not grow with its size.
  const argv = ['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', base.format, '-b', base.path, diskPath];
  if (diskSizeBytes !== undefined) argv.push(String(diskSizeBytes));
  return argv;
}

/** Creates the VM's disk and registers its removal (unless it is meant to persist). */
export async function writeDisk(argv: string[], diskPath: string, cleanup: CleanupStack | undefined): Promise<void> {
  if (cleanup) cleanup.defer(`remove ${diskPath}`, () => rm(diskPath, { force: true }));
  await runProgram(argv);
}
