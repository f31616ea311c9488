import { createHash, type Hash } from 'node:crypto';
import { closeSync, createReadStream, openSync, writeSync } from 'node:fs';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { hidePasswords, log } from '../log.js';
import { HttpStatusError, httpGet, NetworkError, type HttpOptions, type HttpResponse } from './http-get.js';
import { formatBytes, startProgress } from './progress.js';

/** What identifies a version of a remote file, for revalidation and for resuming with If-Range. */
export interface Validators {
  etag?: string;
  lastModified?: string;
}

export interface DownloadOptions {
  http: HttpOptions;
  /** attempts in a row that may fail on the network (each resumes where the last one stopped) */
  attempts: number;
  /** first wait between attempts; doubles each time */
  retryDelayMs: number;
  quiet: boolean;
  /** plain progress lines (not on a terminal) this often */
  progressIntervalMs: number;
}

export type DownloadResult =
  | { status: 'not-modified' }
  | { status: 'downloaded'; sha256: string; sha512?: string; size: number; validators: Validators };

/** The state a partial download leaves next to its .part file, so a later run can resume it. */
interface PartState extends Validators {
  /** without the URL's password */
  url: string;
  total?: number;
}

/**
 * Parses `Content-Range: bytes START-END/TOTAL` (TOTAL may be *). Pure.
 */
export function parseContentRange(header: string | undefined): { start: number; end: number; total: number | undefined } | undefined {
  const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(header?.trim() ?? '');
  if (!m) return undefined;
  return { start: Number(m[1]), end: Number(m[2]), total: m[3] === '*' ? undefined : Number(m[3]) };
}

/**
 * What If-Range can name to tell the server which version a partial file holds: a strong ETag, else the
 * Last-Modified date. Without one a resume could splice two versions, so there is none. Pure.
 */
export function resumeValidator(state: Validators | undefined): string | undefined {
  if (state?.etag && !state.etag.startsWith('W/')) return state.etag;
  return state?.lastModified;
}

/**
 * The headers of one attempt: a resume asks for the rest only if the file is still the same version (offset > 0
 * only with a resumeValidator). Pure.
 */
export function buildRequestHeaders(offset: number, resumeFrom: Validators | undefined, revalidate: Validators | undefined): Record<string, string> {
  const headers: Record<string, string> = {};
  const ifRange = resumeValidator(resumeFrom);
  if (offset > 0 && ifRange) {
    headers.range = `bytes=${offset}-`;
    headers['if-range'] = ifRange;
  } else if (revalidate) {
    if (revalidate.etag) headers['if-none-match'] = revalidate.etag;
    if (revalidate.lastModified) headers['if-modified-since'] = revalidate.lastModified;
  }
  return headers;
}

/** An HTML page where an image should be: a login wall, a mirror's error page, a wrong link. Pure. */
export function looksLikeHtml(head: Buffer): boolean {
  return /^\s*<(!doctype html|html|head|body|\?xml)/i.test(head.subarray(0, 512).toString('latin1'));
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

async function readPartState(path: string, url: string): Promise<PartState | undefined> {
  try {
    const state = JSON.parse(await readFile(path, 'utf8')) as PartState;
    return state.url === hidePasswords(url) ? state : undefined;
  } catch {
    return undefined;
  }
}

/** Sees every byte of a download in order from the first, as it arrives: the unpacker. */
export interface DownloadTee {
  /** false: wait for drained() before giving more. The chunk's memory is reused after the call: copy what you keep. */
  write(chunk: Buffer): boolean;
  drained(): Promise<void>;
  /** the download starts over from its first byte */
  restart(): Promise<void>;
}

export interface DownloadHooks {
  tee?: DownloadTee;
  /** stops the download at once (a stop signal); downloadFile then throws signal.reason */
  signal?: AbortSignal;
  /** also hash with SHA-512 (what Debian publishes for its cloud images), for --digest sha512:HEX */
  sha512?: boolean;
}

/** SHA-256 of the data, and SHA-512 when asked for: only then, as it costs about as much again. */
class Digests {
  private readonly sha256 = createHash('sha256');
  private readonly sha512: Hash | undefined;
  constructor(withSha512: boolean) {
    this.sha512 = withSha512 ? createHash('sha512') : undefined;
  }
  update(chunk: Buffer): void {
    this.sha256.update(chunk);
    this.sha512?.update(chunk);
  }
  hex(): { sha256: string; sha512?: string } {
    return { sha256: this.sha256.digest('hex'), ...(this.sha512 ? { sha512: this.sha512.digest('hex') } : {}) };
  }
}

/**
 * Downloads url into partPath, hashing the data as it streams and handing it to the tee. A partial file from an
 * earlier run or an earlier attempt is resumed with a Range request (If-Range guards against a changed file). With
 * `revalidate`, the first request is conditional, and an unchanged remote file gives 'not-modified' with no body.
 * Leaves partPath complete on success; the caller checks the digest and renames it. On a network failure
 * after all attempts, the partial file is kept (with its state file) for the next run to resume.
 */
export async function downloadFile(url: string, partPath: string, options: DownloadOptions, revalidate?: Validators, hooks: DownloadHooks = {}): Promise<DownloadResult> {
  try {
    return await download(url, partPath, options, revalidate, hooks);
  } catch (err) {
    if (hooks.signal?.aborted) throw hooks.signal.reason;
    if (err instanceof Error) err.message = hidePasswords(err.message);
    throw err;
  }
}

async function download(url: string, partPath: string, options: DownloadOptions, revalidate: Validators | undefined, { tee, signal, sha512 = false }: DownloadHooks): Promise<DownloadResult> {
  const statePath = `${partPath}.json`;
  let state = await readPartState(statePath, url);
  let offset = state ? await sizeOf(partPath) : 0;
  if (!state || offset === 0) {
    await rm(partPath, { force: true });
    offset = 0;
  }
  // the first `seen` bytes of partPath are in `hash` and were given to the tee
  let hash = new Digests(sha512);
  let seen = 0;
  const startOver = async () => {
    if (seen > 0) await tee?.restart();
    hash = new Digests(sha512);
    seen = 0;
  };
  let lastError: Error | undefined;

  for (let attempt = 1; attempt <= options.attempts; attempt++) {
    if (attempt > 1) {
      const delay = options.retryDelayMs * 2 ** (attempt - 2);
      log.warn(`${lastError!.message}; retrying in ${delay / 1000} s (attempt ${attempt} of ${options.attempts})`);
      await sleep(delay, undefined, { signal });
      offset = await sizeOf(partPath);
    }
    if (offset > 0 && !resumeValidator(state)) {
      // nothing tells which version the partial file holds: resuming could splice two of them
      log.info(`the partial download of ${url} cannot be resumed safely (the server sent no strong ETag or Last-Modified); starting over`);
      await rm(partPath, { force: true });
      offset = 0;
    }
    if (offset !== seen) {
      // a partial file from an earlier run: its bytes are hashed and unpacked first, as if they had just arrived
      await startOver();
      await replayPart(partPath, offset, hash, tee, signal);
      seen = offset;
    }
    const headers = buildRequestHeaders(offset, state, offset === 0 ? revalidate : undefined);
    let response: HttpResponse;
    try {
      response = await httpGet(url, headers, options.http, signal);
    } catch (err) {
      if (!(err instanceof NetworkError) || signal?.aborted) throw err;
      lastError = err;
      continue;
    }

    const { status } = response;
    /** the partial file is of no use: drop it and ask again from byte 0 (not counted as a failed attempt) */
    const discardPartial = async () => {
      response.close();
      await rm(partPath, { force: true });
      offset = 0;
      state = undefined;
      attempt--;
    };
    if (status === 304 && revalidate && offset === 0) {
      response.close();
      return { status: 'not-modified' };
    }
    if (status === 416 && offset > 0) {
      // the partial file is no longer a prefix of what the server has
      await discardPartial();
      continue;
    }
    if (status < 200 || status >= 300) {
      response.close();
      throw new HttpStatusError(`download of ${url} failed: HTTP ${status} ${response.statusText}`.trim(), status);
    }
    const validators: Validators = {};
    if (response.headers.etag !== undefined) validators.etag = response.headers.etag;
    if (response.headers['last-modified'] !== undefined) validators.lastModified = response.headers['last-modified'];
    if (status === 200 && revalidate?.etag && validators.etag === revalidate.etag) {
      // a server that ignores If-None-Match but sends the same ETag: same file
      response.close();
      return { status: 'not-modified' };
    }

    let total: number | undefined;
    if (status === 206) {
      const range = parseContentRange(response.headers['content-range']);
      if (!range || range.start !== offset) {
        response.close();
        throw new HttpStatusError(`download of ${url} failed: the server answered a resume at byte ${offset} with range ${response.headers['content-range'] ?? '(none)'}`, status);
      }
      const changed = (state?.total !== undefined && range.total !== state.total) || (state?.etag !== undefined && validators.etag !== undefined && validators.etag !== state.etag);
      if (changed) {
        // the rest of another version (a server that ignored If-Range): the partial file is of no use
        log.info(`${url} changed since the partial download (now ${range.total ?? 'unknown'} bytes, was ${state?.total ?? 'unknown'}); starting over`);
        await discardPartial();
        continue;
      }
      total = range.total;
    } else {
      if (offset > 0) log.info(`the server sent ${url} whole instead of resuming at ${formatBytes(offset)} (a new version, or no Range support); starting over`);
      offset = 0;
      await startOver();
      if (response.framing.kind === 'length') total = response.framing.length;
    }
    state = { url: hidePasswords(url), ...validators, ...(total !== undefined ? { total } : {}) };
    await writeFile(statePath, JSON.stringify(state));

    const progress = startProgress(`downloading ${url}`, total, { resumedFrom: offset, quiet: options.quiet, intervalMs: options.progressIntervalMs });
    if (offset > 0) log.info(`resuming ${url} at ${formatBytes(offset)}${total ? ` of ${formatBytes(total)}` : ''}`);
    const file = openSync(partPath, offset > 0 ? 'r+' : 'w');
    let done = offset;
    let cut: unknown;
    try {
      await response.readBody((chunk) => {
        if (done === 0 && looksLikeHtml(chunk)) {
          throw new HttpStatusError(`download of ${url} returned an HTML page (HTTP ${status}, ${response.headers['content-type'] ?? 'no content type'}), not an image: a login or error page? check the URL`, status);
        }
        // given to the unpacker (another process) first, so it has work while this chunk is hashed and written
        // here, in place: the chunk's memory is reused for the next read
        const teeFull = tee && !tee.write(chunk);
        hash.update(chunk);
        writeAll(file, chunk, done);
        done += chunk.length;
        progress.update(done);
        if (teeFull) return tee.drained();
      });
    } catch (err) {
      if (!(err instanceof NetworkError) && !signal?.aborted) throw err;
      cut = err; // the connection broke or stalled: retried
    } finally {
      progress.stop();
      closeSync(file);
    }
    seen = done;
    if (cut) {
      if (signal?.aborted) throw cut;
      lastError = new NetworkError(`download of ${url} was interrupted at ${formatBytes(done)}${total ? ` of ${formatBytes(total)}` : ''} (${describeBodyError(cut as Error)})`, { cause: cut });
      continue;
    }
    if (total !== undefined && done !== total) {
      lastError = new NetworkError(`download of ${url} ended at ${formatBytes(done)} of ${formatBytes(total)} (the connection closed early)`);
      continue;
    }
    return { status: 'downloaded', ...hash.hex(), size: done, validators };
  }
  throw lastError!;
}

/** Feeds the first `length` bytes of a partial download to the hash and the tee. */
async function replayPart(partPath: string, length: number, hash: Digests, tee: DownloadTee | undefined, signal: AbortSignal | undefined): Promise<void> {
  if (length === 0) return;
  for await (const chunk of createReadStream(partPath, { start: 0, end: length - 1, highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    signal?.throwIfAborted();
    hash.update(chunk);
    if (tee && !tee.write(chunk)) await tee.drained();
  }
}

/** Writes all of `data` at `position`; a short write means the disk is full. */
function writeAll(file: number, data: Buffer, position: number): void {
  let written = 0;
  while (written < data.length) {
    const n = writeSync(file, data, written, data.length - written, position + written);
    if (n === 0) throw new Error(`cannot write the partial download at byte ${position + written}: is the disk full?`);
    written += n;
  }
}

/** Why a body ended early, without the URL the message is about. */
function describeBodyError(err: Error): string {
  return err.message.replace(/ \(https?:\/\/\S*\)$/, '').replace(/^https?:\/\/\S*: /, '');
}

/** Removes a partial download and its state file. */
export async function removePart(partPath: string): Promise<void> {
  await Promise.all([rm(partPath, { force: true }), rm(`${partPath}.json`, { force: true })]);
}
