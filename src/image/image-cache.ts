import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { hostError } from '../errors.js';
import type { Validators } from './download-file.js';

/** What the cache knows about one entry (one URL, or one local file that needed unpacking or converting). */
export interface CacheMeta {
  /** the URL, or file:// and the local path */
  source: string;
  /** the downloaded bytes, for --sha256 and for the log */
  sha256?: string;
  /** when --digest sha512:HEX asked for it */
  sha512?: string;
  size?: number;
  validators?: Validators;
  /** a local source's identity: a different one means the file was replaced and is unpacked again */
  sourceIdentity?: FileIdentity;
  fetchedAt?: string;
  /** the bootable file in the entry, once made */
  base?: CachedBase;
}

export interface CachedBase {
  /** file name inside the entry folder */
  file: string;
  kind: 'disk' | 'iso';
  format: string;
  virtualSize: number;
}

export interface FileIdentity {
  size: number;
  mtimeMs: number;
  ino: number;
}

/** Names of the files in an entry folder. */
export const ENTRY = {
  meta: 'meta.json',
  lock: 'lock',
  /** the downloaded bytes; its .part while downloading */
  download: 'download',
  part: 'download.part',
  unpacked: 'unpacked',
  converted: 'converted.qcow2',
} as const;

/** The cache key of a URL (or file:// path): its SHA-256, as a folder name. Pure. */
export function cacheKey(source: string): string {
  return createHash('sha256').update(source).digest('hex');
}

export function entryDirFor(cacheDir: string, source: string): string {
  return path.join(cacheDir, cacheKey(source));
}

/** Makes the entry folder; an unusable --cache-dir is reported as such. */
export async function makeEntryDir(entryDir: string, cacheDir: string): Promise<void> {
  try {
    await mkdir(entryDir, { recursive: true });
  } catch (err) {
    // a recursive mkdir says ENOENT on a read-only file system: a plain one names the real cause
    const code = await mkdir(entryDir).then(
      () => (err as NodeJS.ErrnoException).code,
      (again: NodeJS.ErrnoException) => (again.code === 'ENOENT' || again.code === 'EEXIST' ? (err as NodeJS.ErrnoException).code : again.code),
    );
    throw hostError(`the image cache ${cacheDir} cannot be written (${code}); mount a writable volume there or give --cache-dir`, err);
  }
}

/**
 * A write into the cache that failed for want of room (ENOSPC, EDQUOT) or because it became read-only, as a one
 * line host error; undefined for any other error. xz and zstd say it in their own words.
 */
export function cacheWriteError(err: unknown, cacheDir: string, what: string): Error | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const text = `${(err as Error | undefined)?.message ?? ''} ${((err as Error | undefined)?.cause as Error | undefined)?.message ?? ''}`;
  if (code === 'ENOSPC' || code === 'EDQUOT' || /No space left on device|Disk quota exceeded/i.test(text)) {
    return hostError(`the image cache ${cacheDir} is full while ${what}: free some space there or give --cache-dir a bigger volume; nothing was kept`, err);
  }
  if (code === 'EROFS' || /Read-only file system/i.test(text)) {
    return hostError(`the image cache ${cacheDir} is read-only: mount a writable volume there or give --cache-dir`, err);
  }
  return undefined;
}

export async function readMeta(entryDir: string): Promise<CacheMeta | undefined> {
  try {
    return JSON.parse(await readFile(path.join(entryDir, ENTRY.meta), 'utf8')) as CacheMeta;
  } catch {
    return undefined;
  }
}

/** Writes meta.json atomically (temp file and rename), so a crash never leaves half of it. */
export async function writeMeta(entryDir: string, meta: CacheMeta): Promise<void> {
  const tmp = path.join(entryDir, `${ENTRY.meta}.tmp`);
  await writeFile(tmp, `${JSON.stringify(meta, null, 2)}\n`);
  await rename(tmp, path.join(entryDir, ENTRY.meta));
}

/** Removes leftovers of a run that died halfway (the caller holds the entry's lock). */
export async function removeTempFiles(entryDir: string): Promise<void> {
  for (const name of await readdir(entryDir).catch(() => [] as string[])) {
    if (name.endsWith('.tmp')) await rm(path.join(entryDir, name), { force: true });
  }
}

/** Removes everything in an entry but its lock (which its holder removes), then the folder if it is empty. */
export async function clearEntry(entryDir: string, keep: (name: string) => boolean = () => false): Promise<void> {
  for (const name of await readdir(entryDir).catch(() => [] as string[])) {
    if (name !== ENTRY.lock && !keep(name)) await rm(path.join(entryDir, name), { force: true, recursive: true });
  }
}

/** Removes the entry folder if nothing is left in it. */
export async function removeEntryIfEmpty(entryDir: string): Promise<void> {
  const left = await readdir(entryDir).catch(() => ['?']);
  if (left.length === 0) await rm(entryDir, { recursive: true, force: true });
}
