import { realpathSync } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { VmConfig } from '../config/config.js';
import { inputError, usageError } from '../errors.js';
import { hidePasswords, log } from '../log.js';
import { acquireCacheLock } from './cache-lock.js';
import { downloadFile, removePart, type DownloadOptions } from './download-file.js';
import { DEFAULT_HTTP_OPTIONS, HttpStatusError, NetworkError, proxyFromEnv, type ProxySettings } from './http-get.js';
import {
  cacheWriteError,
  clearEntry,
  ENTRY,
  entryDirFor,
  makeEntryDir,
  readMeta,
  removeEntryIfEmpty,
  removeTempFiles,
  writeMeta,
  type CachedBase,
  type CacheMeta,
  type FileIdentity,
} from './image-cache.js';
import { readPinnedBase } from './persist-disk.js';
import type { BaseImage } from './prepare-disk.js';
import { DIRECT_FORMATS, probeImage, type Compression } from './probe-image.js';
import { formatBytes, formatDuration } from './progress.js';
import { convertImage, unpackImage, UnpackWhileDownloading } from './unpack-image.js';

export type ResolveConfig = Pick<VmConfig, 'image' | 'cacheDir' | 'sha256' | 'sha512' | 'quiet' | 'persist' | 'dataDir' | 'name'>;

/**
 * Turns the first argument into a bootable base image. The user's file is only ever read: a plain qcow2, raw or
 * ISO is used where it is; a compressed or foreign-format one is unpacked or converted once into the cache; a
 * URL is downloaded into the cache (and revalidated on later runs). `signal` (the launcher's stop signal) ends a
 * download or a wait for another launcher's lock at once, removes their temp files, and throws signal.reason.
 */
export async function resolveBaseImage(config: ResolveConfig, env: NodeJS.ProcessEnv = process.env, signal?: AbortSignal): Promise<BaseImage> {
  try {
    const pinned = await readPinnedBase(config);
    if (pinned) return pinned;
    if (config.image.kind === 'url') return await resolveUrl(config.image.url, config, downloadOptions(env, config.quiet), signal);

    const file = config.image.path;
    const probed = await probeImage(file);
    if (probed.kind === 'iso') return { kind: 'iso', path: file };
    if (probed.kind === 'disk' && DIRECT_FORMATS.includes(probed.format)) {
      return { kind: 'disk', path: file, format: probed.format, virtualSize: probed.virtualSize };
    }
    return await resolveLocalInCache(file, config.cacheDir, signal);
  } catch (err) {
    if (signal?.aborted) throw signal.reason;
    throw err;
  }
}

/** Timeouts and retries for downloads; the environment may change them (tests do). */
export function downloadOptions(env: NodeJS.ProcessEnv, quiet: boolean): DownloadOptions {
  const positive = (name: string, dflt: number, what: string): number => {
    const text = env[name];
    if (text === undefined || text === '') return dflt;
    const n = Number(text);
    if (!Number.isFinite(n) || n <= 0) throw usageError(`${name}=${text} is not valid; give ${what}`);
    return n;
  };
  const seconds = (name: string, dflt: number) => positive(name, dflt, 'a number of seconds') * 1000;
  return {
    http: {
      connectTimeoutMs: seconds('SNABBVM_HTTP_CONNECT_TIMEOUT', DEFAULT_HTTP_OPTIONS.connectTimeoutMs / 1000),
      stallTimeoutMs: seconds('SNABBVM_HTTP_STALL_TIMEOUT', DEFAULT_HTTP_OPTIONS.stallTimeoutMs / 1000),
      maxRedirects: DEFAULT_HTTP_OPTIONS.maxRedirects,
      ...proxySettings(env),
    },
    attempts: Math.max(1, Math.round(positive('SNABBVM_HTTP_ATTEMPTS', 4, 'a number of attempts'))),
    retryDelayMs: seconds('SNABBVM_HTTP_RETRY_DELAY', 2),
    progressIntervalMs: seconds('SNABBVM_PROGRESS_INTERVAL', 10),
    quiet,
  };
}

/** HTTP_PROXY, HTTPS_PROXY and NO_PROXY; a malformed proxy URL is a usage error (exit 2). */
function proxySettings(env: NodeJS.ProcessEnv): { proxy?: ProxySettings } {
  try {
    const proxy = proxyFromEnv(env);
    return proxy ? { proxy } : {};
  } catch (err) {
    throw usageError((err as Error).message);
  }
}

function toBase(entryDir: string, base: CachedBase, sourceSha256?: string): BaseImage {
  const file = path.join(entryDir, base.file);
  const image: BaseImage = base.kind === 'iso' ? { kind: 'iso', path: file } : { kind: 'disk', path: file, format: base.format, virtualSize: base.virtualSize };
  if (sourceSha256) image.sourceSha256 = sourceSha256;
  return image;
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

/**
 * A URL: reuse the cached copy when the server says it has not changed (or cannot be reached), else download
 * it, check its digest, and make its base. A compressed download is unpacked while it arrives. One launcher at a
 * time per URL, under the entry's lock.
 */
export async function resolveUrl(url: string, config: Pick<ResolveConfig, 'cacheDir' | 'sha256' | 'sha512'>, options: DownloadOptions, signal?: AbortSignal): Promise<BaseImage> {
  // one expected digest at most (load-config refuses two)
  const expected = config.sha512 !== undefined ? { name: 'SHA-512', key: 'sha512' as const, hex: config.sha512 } : config.sha256 !== undefined ? { name: 'SHA-256', key: 'sha256' as const, hex: config.sha256 } : undefined;
  // the cache keeps the URL without its password (in meta.json, and as the key of its folder)
  const source = hidePasswords(url);
  const entryDir = entryDirFor(config.cacheDir, source);
  await makeEntryDir(entryDir, config.cacheDir);
  const release = await acquireCacheLock(path.join(entryDir, ENTRY.lock), url, { signal });
  const partPath = path.join(entryDir, ENTRY.part);
  const unpackedTmp = path.join(entryDir, `${ENTRY.unpacked}.tmp`);
  const unpack = new UnpackWhileDownloading(unpackedTmp, url);
  const stopUnpacking = () => void unpack.abort();
  signal?.addEventListener('abort', stopUnpacking);
  try {
    await removeTempFiles(entryDir);
    const meta = await readMeta(entryDir);
    const cached = meta?.source === source && meta.base && (await exists(path.join(entryDir, meta.base.file))) ? meta : undefined;
    const cachedAt = cached?.fetchedAt ? ` (downloaded ${cached.fetchedAt})` : '';
    if (cached && expected && cached[expected.key] === expected.hex) {
      log.info(`using the cached ${url}: its ${expected.name} matches the expected digest`);
      return toBase(entryDir, cached.base!, cached.sha256);
    }
    const revalidate = cached && !expected ? cached.validators ?? {} : undefined;

    let result;
    try {
      result = await downloadFile(url, partPath, options, revalidate, { tee: unpack, signal, sha512: expected?.key === 'sha512' });
    } catch (err) {
      if (cached && !expected && (err instanceof NetworkError || err instanceof HttpStatusError)) {
        log.warn(`cannot check ${url} for a newer version (${err.message}); using the cached copy${cachedAt}`);
        return toBase(entryDir, cached.base!, cached.sha256);
      }
      throw err;
    }
    if (result.status === 'not-modified') {
      log.info(`using the cached ${url}: the server says it has not changed${cachedAt}`);
      return toBase(entryDir, cached!.base!, cached!.sha256);
    }

    if (expected && result[expected.key] !== expected.hex) {
      await unpack.abort();
      await clearEntry(entryDir);
      throw inputError(`the ${expected.name} of ${url} is ${result[expected.key]}, not ${expected.hex} as --sha256/--digest expects: a corrupt download or a wrong digest; nothing was kept`);
    }
    log.info(`downloaded ${url}: ${formatBytes(result.size)}, sha256 ${result.sha256}`);
    const newMeta: CacheMeta = { source, sha256: result.sha256, ...(result.sha512 ? { sha512: result.sha512 } : {}), size: result.size, validators: result.validators, fetchedAt: new Date().toISOString() };
    let base: CachedBase;
    try {
      const t0 = Date.now();
      const compression = await unpack.end(); // the decompressor finishes what it was given
      // the old meta.json describes the old version: gone first, so a crash here never pairs it with new bytes
      await rm(path.join(entryDir, ENTRY.meta), { force: true });
      await rm(`${partPath}.json`, { force: true });
      if (compression) {
        await rename(unpackedTmp, path.join(entryDir, ENTRY.unpacked));
        await rm(partPath, { force: true }); // the cache keeps one copy: the unpacked one
        const size = formatBytes((await stat(path.join(entryDir, ENTRY.unpacked))).size);
        log.info(`unpacked ${url} (${compression}) to ${size}, ${formatDuration((Date.now() - t0) / 1000)} after the download ended`);
        base = await makeBase(path.join(entryDir, ENTRY.unpacked), entryDir, url, compression);
      } else {
        await rename(partPath, path.join(entryDir, ENTRY.download));
        base = await makeBase(path.join(entryDir, ENTRY.download), entryDir, url);
      }
    } catch (err) {
      await unpack.abort();
      if (signal?.aborted) throw err; // stopped, not a bad download: what was cached before stays
      await clearEntry(entryDir); // nothing usable was downloaded: keep nothing
      throw err;
    }
    await writeMeta(entryDir, { ...newMeta, base });
    await clearEntry(entryDir, (name) => name === ENTRY.meta || name === base.file); // an older version's files
    return toBase(entryDir, base, result.sha256);
  } catch (err) {
    await unpack.abort(); // the decompressor is gone before its output is removed
    await cleanUpAfterFailure(entryDir, partPath, err, signal);
    if (signal?.aborted) throw signal.reason;
    // no message carries the URL's password, wherever it came from
    if (err instanceof Error) err.message = hidePasswords(err.message);
    const full = cacheWriteError(err, config.cacheDir, `downloading ${source}`);
    if (full) throw full; // the partial file is gone (cleanUpAfterFailure): it could not be finished there
    if (err instanceof HttpStatusError || err instanceof NetworkError) throw inputError(err.message, err);
    throw err;
  } finally {
    signal?.removeEventListener('abort', stopUnpacking);
    await unpack.abort(); // a no-op once unpacked; else no decompressor outlives the call (a cached copy was used)
    await release();
    await removeEntryIfEmpty(entryDir);
  }
}

/**
 * After a failed download, keep a partial file only when the network broke off (the next run resumes it);
 * an HTTP error, an HTML page, a bad image or a stop signal leaves nothing but what was cached before.
 */
async function cleanUpAfterFailure(entryDir: string, partPath: string, err: unknown, signal: AbortSignal | undefined): Promise<void> {
  await removeTempFiles(entryDir);
  const partSize = await stat(partPath).then(
    (s) => s.size,
    () => 0,
  );
  if (err instanceof NetworkError && partSize > 0 && !signal?.aborted) {
    log.info(`the partial download (${formatBytes(partSize)}) is kept in ${entryDir}; the next run resumes it`);
    return;
  }
  await removePart(partPath);
}

/**
 * A local compressed or foreign-format image: unpacked or converted once into the cache, keyed by its real
 * path; done again only when the file changes (size, mtime, inode). The file in /u is only read.
 */
async function resolveLocalInCache(file: string, cacheDir: string, signal: AbortSignal | undefined): Promise<BaseImage> {
  const real = realpathSync(file);
  const source = pathToFileURL(real).href;
  const entryDir = entryDirFor(cacheDir, source);
  await makeEntryDir(entryDir, cacheDir);
  const release = await acquireCacheLock(path.join(entryDir, ENTRY.lock), file, { signal });
  try {
    await removeTempFiles(entryDir);
    const st = await stat(real);
    const identity: FileIdentity = { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino };
    const meta = await readMeta(entryDir);
    if (meta?.base && sameIdentity(meta.sourceIdentity, identity) && (await exists(path.join(entryDir, meta.base.file)))) {
      log.info(`using ${file} as unpacked before in the cache`);
      return toBase(entryDir, meta.base);
    }
    await clearEntry(entryDir);
    const base = await makeBase(real, entryDir, `image ${file}`);
    await writeMeta(entryDir, { source, sourceIdentity: identity, fetchedAt: new Date().toISOString(), base });
    return toBase(entryDir, base);
  } catch (err) {
    await clearEntry(entryDir);
    throw cacheWriteError(err, cacheDir, `unpacking ${file}`) ?? err;
  } finally {
    await release();
    await removeEntryIfEmpty(entryDir);
  }
}

function sameIdentity(a: FileIdentity | undefined, b: FileIdentity): boolean {
  return a !== undefined && a.size === b.size && a.mtimeMs === b.mtimeMs && a.ino === b.ino;
}

/**
 * Makes a bootable file from `input` inside the entry: unpack a compression, convert a foreign format, or (for a
 * download that is already qcow2, raw or ISO) use it as it is. Intermediate files are written as .tmp and renamed
 * when complete; the input is removed only when it is the entry's own download. `unpackedFrom`: input is
 * already the unpacked form of a download in that compression.
 */
async function makeBase(input: string, entryDir: string, name: string, unpackedFrom?: Compression): Promise<CachedBase> {
  const inEntry = (f: string) => path.join(entryDir, f);
  let current = input;
  let compressed = unpackedFrom !== undefined;
  for (;;) {
    const probed = await probeImage(current, name);
    if (probed.kind === 'compressed') {
      if (compressed) throw inputError(`${name} is compressed twice (${probed.compression} inside); unpack it yourself and give the result`);
      compressed = true;
      const t0 = Date.now();
      log.info(`unpacking ${name} (${probed.compression}) into the cache`);
      const size = await unpackImage(current, probed.compression, inEntry(`${ENTRY.unpacked}.tmp`), name);
      await rename(inEntry(`${ENTRY.unpacked}.tmp`), inEntry(ENTRY.unpacked));
      log.info(`unpacked ${name}: ${formatBytes(size)} in ${formatDuration((Date.now() - t0) / 1000)}`);
      await dropIfOwn(current, entryDir);
      current = inEntry(ENTRY.unpacked);
      continue;
    }
    if (probed.kind === 'iso') return { file: path.basename(current), kind: 'iso', format: 'raw', virtualSize: probed.virtualSize };
    if (DIRECT_FORMATS.includes(probed.format) && path.dirname(current) === entryDir) {
      return { file: path.basename(current), kind: 'disk', format: probed.format, virtualSize: probed.virtualSize };
    }
    const t0 = Date.now();
    log.info(`converting ${name} (${probed.format}) to qcow2 in the cache`);
    await convertImage(current, probed.format, inEntry(`${ENTRY.converted}.tmp`), name);
    await rename(inEntry(`${ENTRY.converted}.tmp`), inEntry(ENTRY.converted));
    log.info(`converted ${name} in ${formatDuration((Date.now() - t0) / 1000)}`);
    await dropIfOwn(current, entryDir);
    return { file: ENTRY.converted, kind: 'disk', format: 'qcow2', virtualSize: probed.virtualSize };
  }
}

/** Removes an intermediate file once its successor exists, but never the user's own file. */
async function dropIfOwn(file: string, entryDir: string): Promise<void> {
  if (path.dirname(file) === entryDir) await rm(file, { force: true });
}
