import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { VmConfig } from '../config/config.js';
import { inputError } from '../errors.js';
import type { CleanupStack } from '../lifecycle/cleanup-stack.js';
import { log } from '../log.js';
import type { RuntimePaths } from '../paths.js';
import { runProgram } from '../process/run-program.js';
import { formatSize } from '../config/size.js';
import { copyFile } from 'node:fs/promises';
import { planDisk, writeDisk, type BaseImage, type DiskBase } from './prepare-disk.js';

/** Where the VM's writable disk lives, and whether it outlives the run. */
export interface DiskLocation {
  path: string;
  keep: boolean;
  /** with --persist: what the disk was made from, so a later run can check it still fits */
  recordPath?: string;
}

/** What a persisted disk was made on. A qcow2 overlay is only meaningful on the exact base it was made on. */
export interface DiskRecord {
  /** the image argument: a URL or a path; `blank` for a blank --disk */
  image: string;
  base: DiskBase;
  /** the base file's size and mtime when the disk was made */
  baseSize: number;
  baseMtimeMs: number;
  createdAt: string;
}

/** The runtime folder's overlay, gone with the run; or with --persist, DATA_DIR/NAME/disk.qcow2, kept. Pure. */
export function planDiskLocation(config: Pick<VmConfig, 'persist' | 'dataDir' | 'name'>, paths: Pick<RuntimePaths, 'overlay'>): DiskLocation {
  return planFileLocation(config, paths.overlay, 'disk.qcow2');
}

/**
 * A VM file that --persist keeps (a disk, the UEFI variables): in the run folder, or with --persist under the same
 * name in DATA_DIR/NAME, with a disk's record beside it (disk1.qcow2 → disk1.json). Pure.
 */
export function planFileLocation(config: Pick<VmConfig, 'persist' | 'dataDir' | 'name'>, runPath: string, name = path.basename(runPath)): DiskLocation {
  if (!config.persist) return { path: runPath, keep: false };
  const dir = path.join(config.dataDir, config.name);
  const location: DiskLocation = { path: path.join(dir, name), keep: true };
  if (name.endsWith('.qcow2')) location.recordPath = path.join(dir, `${name.slice(0, -'.qcow2'.length)}.json`);
  return location;
}

function imageArgument(config: Pick<VmConfig, 'image'>): string {
  return config.image.kind === 'url' ? config.image.url : config.image.path;
}

async function readRecord(recordPath: string): Promise<DiskRecord | undefined> {
  try {
    return JSON.parse(await readFile(recordPath, 'utf8')) as DiskRecord;
  } catch {
    return undefined;
  }
}

async function baseStat(base: DiskBase): Promise<{ size: number; mtimeMs: number } | undefined> {
  if (base.kind === 'blank') return undefined;
  return stat(base.path).then(
    (s) => ({ size: s.size, mtimeMs: s.mtimeMs }),
    () => undefined,
  );
}

/**
 * With --persist and a disk from an earlier run of the same image: that disk's base, as long as it is unchanged.
 * Such a run needs no download and no revalidation: an upstream update must not pull the base from under the
 * VM's writes.
 */
export async function readPinnedBase(config: Pick<VmConfig, 'persist' | 'dataDir' | 'name' | 'image'>): Promise<BaseImage | undefined> {
  const location = planDiskLocation(config, { overlay: '' });
  if (!location.recordPath) return undefined;
  const record = await readRecord(location.recordPath);
  if (!record || record.image !== imageArgument(config) || record.base.kind === 'blank') return undefined;
  const now = await baseStat(record.base);
  if (!now || now.size !== record.baseSize || now.mtimeMs !== record.baseMtimeMs) return undefined; // resolve it again, then check
  if (!(await stat(location.path).then(() => true, () => false))) return undefined;
  log.info(`using the base the persisted disk ${location.path} was made on: ${record.base.path}`);
  return record.base;
}

/**
 * Makes (or, with --persist, reuses) the VM's writable disk on `base`, and returns its path. A persisted disk is
 * checked against its record: made from the same image, on the same unchanged base. --disk-size grows it.
 */
export async function prepareVmDisk(
  base: BaseImage,
  config: Pick<VmConfig, 'persist' | 'dataDir' | 'name' | 'image' | 'diskSizeBytes'>,
  paths: Pick<RuntimePaths, 'overlay'>,
  cleanup: CleanupStack,
): Promise<string> {
  const disk: DiskToMake = { base, argument: imageArgument(config), sizeOption: '--disk-size', what: "the VM's disk" };
  if (config.diskSizeBytes !== undefined) disk.sizeBytes = config.diskSizeBytes;
  return prepareDisk(disk, planDiskLocation(config, paths), config.dataDir, cleanup);
}

/** One writable disk to make or reuse. */
export interface DiskToMake {
  base: DiskBase;
  /** what it was made from, as given: the image argument, a --disk file, or `blank` */
  argument: string;
  sizeBytes?: number;
  /** the option that gives its size, for messages */
  sizeOption: string;
  /** what the log calls it */
  what: string;
}

/**
 * Makes a disk at `location`, or with --persist reuses the one kept there after checking it against its record
 * (made from the same argument, on the same unchanged base); a larger size grows it. Returns its path.
 */
export async function prepareDisk(disk: DiskToMake, location: DiskLocation, dataDir: string, cleanup: CleanupStack): Promise<string> {
  const { base } = disk;
  if (!location.keep) {
    await writeDisk(planDisk(base, location.path, disk.sizeBytes), location.path, cleanup);
    return location.path;
  }
  const dir = path.dirname(location.path);
  await makeDataDir(dir, dataDir);
  const exists = await stat(location.path).then(() => true, () => false);
  if (exists) {
    await checkPersistedDisk(location, base, disk.argument);
    await refreshRecord(location.recordPath!, base);
    await growPersistedDisk(location.path, disk.sizeBytes, disk.sizeOption);
    log.info(`reusing the persisted disk ${location.path}`);
    return location.path;
  }

  const argv = planDisk(base, location.path, disk.sizeBytes);
  const baseNow = await baseStat(base);
  try {
    await writeDisk(argv, location.path, undefined);
    const record: DiskRecord = { image: disk.argument, base, baseSize: baseNow?.size ?? 0, baseMtimeMs: baseNow?.mtimeMs ?? 0, createdAt: new Date().toISOString() };
    await writeFile(location.recordPath!, `${JSON.stringify(record, null, 2)}\n`);
  } catch (err) {
    await rm(location.path, { force: true });
    throw err;
  }
  log.info(`${disk.what} is kept in ${location.path} (--persist); remove ${dir} to start over`);
  return location.path;
}

async function makeDataDir(dir: string, dataDir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    throw inputError(`--persist: the data folder ${dir} cannot be made (${(err as NodeJS.ErrnoException).code}); mount a writable volume at ${dataDir} or give --data-dir`, err);
  }
}

/**
 * UEFI: the VM's own copy of OVMF's variable store (boot entries, settings), next to its disk: made from the
 * template, and with --persist kept with the disk and reused. Returns its path.
 */
export async function prepareEfiVars(
  template: string,
  config: Pick<VmConfig, 'persist' | 'dataDir' | 'name'>,
  paths: Pick<RuntimePaths, 'efiVars'>,
  cleanup: CleanupStack,
): Promise<string> {
  const location = planFileLocation(config, paths.efiVars);
  if (location.keep) {
    await makeDataDir(path.dirname(location.path), config.dataDir);
    if (await stat(location.path).then(() => true, () => false)) return location.path;
  } else {
    cleanup.defer(`remove ${location.path}`, () => rm(location.path, { force: true }));
  }
  await copyFile(template, location.path);
  return location.path;
}

async function checkPersistedDisk(location: DiskLocation, base: DiskBase, argument: string): Promise<void> {
  const disk = location.path;
  const startOver = `remove ${path.dirname(disk)} to start over, or give another --name`;
  const record = await readRecord(location.recordPath!);
  if (!record) throw inputError(`--persist: ${disk} exists but has no record of its base (${location.recordPath}); ${startOver}`);
  if (record.image !== argument) {
    throw inputError(`--persist: the disk ${disk} was made from ${record.image}, not ${argument}; give that image again, or ${startOver}`);
  }
  const backing = await backingFile(disk);
  const expected = base.kind === 'disk' ? base.path : undefined;
  const changed = base.kind === 'disk' && !(await sameBase(record, base));
  if (backing !== expected || changed) {
    throw inputError(`--persist: the disk ${disk} was made on the base ${record.base.kind === 'blank' ? 'none (blank)' : record.base.path} as it was on ${record.createdAt}, and that base has changed since (a new download or a replaced file); its writes only make sense on the old base: ${startOver}`);
  }
}

/**
 * Whether a base is the one a persisted disk was made on: the same download digest (a URL image downloaded again
 * into an emptied cache is still the same), or else the same file size and mtime.
 */
async function sameBase(record: DiskRecord, base: BaseImage): Promise<boolean> {
  const recorded = record.base.kind === 'blank' ? undefined : record.base.sourceSha256;
  if (recorded && base.sourceSha256) return recorded === base.sourceSha256;
  const now = await baseStat(base);
  return now !== undefined && now.size === record.baseSize && now.mtimeMs === record.baseMtimeMs;
}

/** The same base, maybe a new file of it (downloaded again): note its size and mtime for the next run's pinning. */
async function refreshRecord(recordPath: string, base: DiskBase): Promise<void> {
  const record = await readRecord(recordPath);
  const now = await baseStat(base);
  if (!record || !now || (record.baseSize === now.size && record.baseMtimeMs === now.mtimeMs)) return;
  await writeFile(recordPath, `${JSON.stringify({ ...record, baseSize: now.size, baseMtimeMs: now.mtimeMs }, null, 2)}\n`);
}

async function backingFile(disk: string): Promise<string | undefined> {
  const { stdout } = await runProgram(['qemu-img', 'info', '-U', '--output=json', disk]);
  return (JSON.parse(stdout) as { 'backing-filename'?: string })['backing-filename'];
}

/** --disk-size (or a --disk SIZE) on a persisted disk: grow it, never shrink it. */
async function growPersistedDisk(disk: string, diskSizeBytes: number | undefined, sizeOption: string): Promise<void> {
  if (diskSizeBytes === undefined) return;
  const { stdout } = await runProgram(['qemu-img', 'info', '-U', '--output=json', disk]);
  const current = (JSON.parse(stdout) as { 'virtual-size': number })['virtual-size'];
  if (diskSizeBytes < current) {
    throw inputError(`${sizeOption} ${formatSize(diskSizeBytes)} is smaller than the persisted disk's ${formatSize(current)}; disks only grow: give at least ${formatSize(current)} for ${disk}`);
  }
  if (diskSizeBytes > current) {
    await runProgram(['qemu-img', 'resize', '-q', disk, String(diskSizeBytes)]);
    log.info(`grew the persisted disk ${disk} to ${formatSize(diskSizeBytes)}`);
  }
}
