import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { VmConfig } from '../config/config.js';
import { inputError } from '../errors.js';
import type { CleanupStack } from '../lifecycle/cleanup-stack.js';
import { log } from '../log.js';
import type { RuntimePaths } from '../paths.js';
import { runProgram } from '../process/run-program.js';
import { formatSize } from '../config/size.js';
import { planDisk, writeDisk, type BaseImage } from './prepare-disk.js';

/** Where the VM's writable disk lives, and whether it outlives the run. */
export interface DiskLocation {
  path: string;
  keep: boolean;
  /** with --persist: what the disk was made from, so a later run can check it still fits */
  recordPath?: string;
}

/** What a persisted disk was made on. A qcow2 overlay is only meaningful on the exact base it was made on. */
export interface DiskRecord {
  /** the image argument: a URL or a path */
  image: string;
  base: BaseImage;
  /** the base file's size and mtime when the disk was made */
  baseSize: number;
  baseMtimeMs: number;
  createdAt: string;
}

/** The runtime folder's overlay, gone with the run; or with --persist, DATA_DIR/NAME/disk.qcow2, kept. Pure. */
export function planDiskLocation(config: Pick<VmConfig, 'persist' | 'dataDir' | 'name'>, paths: Pick<RuntimePaths, 'overlay'>): DiskLocation {
  if (!config.persist) return { path: paths.overlay, keep: false };
  const dir = path.join(config.dataDir, config.name);
  return { path: path.join(dir, 'disk.qcow2'), keep: true, recordPath: path.join(dir, 'disk.json') };
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

async function baseStat(base: BaseImage): Promise<{ size: number; mtimeMs: number } | undefined> {
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
  if (!record || record.image !== imageArgument(config)) return undefined;
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
  const location = planDiskLocation(config, paths);
  if (!location.keep) {
    await writeDisk(planDisk(base, location.path, config.diskSizeBytes), location.path, cleanup);
    return location.path;
  }
  const dir = path.dirname(location.path);
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    throw inputError(`--persist: the data folder ${dir} cannot be made (${(err as NodeJS.ErrnoException).code}); mount a writable volume at ${config.dataDir} or give --data-dir`, err);
  }
  const exists = await stat(location.path).then(() => true, () => false);
  if (exists) {
    await checkPersistedDisk(location, base, config);
    await refreshRecord(location.recordPath!, base);
    await growPersistedDisk(location.path, config.diskSizeBytes);
    log.info(`reusing the persisted disk ${location.path}`);
    return location.path;
  }

  const argv = planDisk(base, location.path, config.diskSizeBytes);
  const baseNow = await baseStat(base);
  try {
    await writeDisk(argv, location.path, undefined);
    const record: DiskRecord = { image: imageArgument(config), base, baseSize: baseNow?.size ?? 0, baseMtimeMs: baseNow?.mtimeMs ?? 0, createdAt: new Date().toISOString() };
    await writeFile(location.recordPath!, `${JSON.stringify(record, null, 2)}\n`);
  } catch (err) {
    await rm(location.path, { force: true });
    throw err;
  }
  log.info(`the VM's disk is kept in ${location.path} (--persist); remove ${dir} to start over`);
  return location.path;
}

async function checkPersistedDisk(location: DiskLocation, base: BaseImage, config: Pick<VmConfig, 'image' | 'name'>): Promise<void> {
  const disk = location.path;
  const startOver = `remove ${path.dirname(disk)} to start over, or give another --name`;
  const record = await readRecord(location.recordPath!);
  if (!record) throw inputError(`--persist: ${disk} exists but has no record of its base (${location.recordPath}); ${startOver}`);
  if (record.image !== imageArgument(config)) {
    throw inputError(`--persist: the disk ${disk} was made from ${record.image}, not ${imageArgument(config)}; give that image again, or ${startOver}`);
  }
  const backing = await backingFile(disk);
  const expected = base.kind === 'iso' ? undefined : base.path;
  const changed = base.kind !== 'iso' && !(await sameBase(record, base));
  if (backing !== expected || changed) {
    throw inputError(`--persist: the disk ${disk} was made on the base ${record.base.path} as it was on ${record.createdAt}, and that base has changed since (a new download or a replaced file); its writes only make sense on the old base: ${startOver}`);
  }
}

/**
 * Whether a base is the one a persisted disk was made on: the same download digest (a URL image downloaded again
 * into an emptied cache is still the same), or else the same file size and mtime.
 */
async function sameBase(record: DiskRecord, base: BaseImage): Promise<boolean> {
  if (record.base.sourceSha256 && base.sourceSha256) return record.base.sourceSha256 === base.sourceSha256;
  const now = await baseStat(base);
  return now !== undefined && now.size === record.baseSize && now.mtimeMs === record.baseMtimeMs;
}

/** The same base, maybe a new file of it (downloaded again): note its size and mtime for the next run's pinning. */
async function refreshRecord(recordPath: string, base: BaseImage): Promise<void> {
  const record = await readRecord(recordPath);
  const now = await baseStat(base);
  if (!record || !now || (record.baseSize === now.size && record.baseMtimeMs === now.mtimeMs)) return;
  await writeFile(recordPath, `${JSON.stringify({ ...record, baseSize: now.size, baseMtimeMs: now.mtimeMs }, null, 2)}\n`);
}

async function backingFile(disk: string): Promise<string | undefined> {
  const { stdout } = await runProgram(['qemu-img', 'info', '-U', '--output=json', disk]);
  return (JSON.parse(stdout) as { 'backing-filename'?: string })['backing-filename'];
}

/** --disk-size on a persisted disk: grow it, never shrink it. */
async function growPersistedDisk(disk: string, diskSizeBytes: number | undefined): Promise<void> {
  if (diskSizeBytes === undefined) return;
  const { stdout } = await runProgram(['qemu-img', 'info', '-U', '--output=json', disk]);
  const current = (JSON.parse(stdout) as { 'virtual-size': number })['virtual-size'];
  if (diskSizeBytes < current) {
    throw inputError(`--disk-size ${formatSize(diskSizeBytes)} is smaller than the persisted disk's ${formatSize(current)}; disks only grow: give at least ${formatSize(current)} or leave --disk-size out`);
  }
  if (diskSizeBytes > current) {
    await runProgram(['qemu-img', 'resize', '-q', disk, String(diskSizeBytes)]);
    log.info(`grew the persisted disk to ${formatSize(diskSizeBytes)}`);
  }
}
