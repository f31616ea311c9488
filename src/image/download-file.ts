import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readFile, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { log } from '../log.js';
import { HttpStatusError, httpGet, NetworkError, type HttpOptions } from './http-get.js';
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
  | { status: 'downloaded'; sha256: string; size: number; validators: Validators };

/** The state a partial download leaves next to its .part file, so a later run can resume it. */
interface PartState extends Validators {
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

/** The headers of one attempt: a resume asks for the rest only if the file is still the same version. Pure. */
export function buildRequestHeaders(offset: number, resumeFrom: Validators | undefined, revalidate: Validators | undefined): Record<string, string> {
  const headers: Record<string, string> = {};
  if (offset > 0) {
    headers.range = `bytes=${offset}-`;
    const ifRange = resumeFrom?.etag && !resumeFrom.etag.startsWith('W/') ? resumeFrom.etag : resumeFrom?.lastModified;
    if (ifRange) headers['if-range'] = ifRange;
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
    return state.url === url ? state : undefined;
  } catch {
    return undefined;
  }
}

/** Sees every byte of a download in order from the first, as it arrives: the unpacker. */
export interface DownloadTee {
  /** false: wait for drained() before giving more */
  write(chunk: Buffer): boolean;
  drained(): Promise<void>;
  /** the download starts over from its first byte */
  restart(): Promise<void>;
}

export interface DownloadHooks {
  tee?: DownloadTee;
  /** stops the download at once (a stop signal); downloadFile then throws signal.reason */
  signal?: AbortSignal;
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
    throw err;
  }
}

async function download(url: string, partPath: string, options: DownloadOptions, revalidate: Validators | undefined, { tee, signal }: DownloadHooks): Promise<DownloadResult> {
  const statePath = `${partPath}.json`;
  let state = await readPartState(statePath, url);
  let offset = state ? await sizeOf(partPath) : 0;
  if (!state || offset === 0) {
    await rm(partPath, { force: true });
    offset = 0;
  }
  // the first `seen` bytes of partPath are in `hash` and were given to the tee
  let hash = createHash('sha256');
  let seen = 0;
  const startOver = async () => {
    if (seen > 0) await tee?.restart();
    hash = createHash('sha256');
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
    if (offset !== seen) {
      // a partial file from an earlier run: its bytes are hashed and unpacked first, as if they had just arrived
      await startOver();
      await replayPart(partPath, offset, hash, tee, signal);
      seen = offset;
    }
    const headers = buildRequestHeaders(offset, state, offset === 0 ? revalidate : undefined);
    let response: IncomingMessage;
    try {
      ({ response } = await httpGet(url, headers, options.http, signal));
    } catch (err) {
      if (!(err instanceof NetworkError) || signal?.aborted) throw err;
      lastError = err;
      continue;
    }

    const status = response.statusCode ?? 0;
    if (status === 304 && revalidate && offset === 0) {
      response.resume();
      return { status: 'not-modified' };
    }
    if (status === 416 && offset > 0) {
      // the partial file is no longer a prefix of what the server has: start over
      response.resume();
      await rm(partPath, { force: true });
      offset = 0;
      attempt--;
      state = undefined;
      continue;
    }
    if (status < 200 || status >= 300) {
      response.resume();
      throw new HttpStatusError(`download of ${url} failed: HTTP ${status} ${response.statusMessage ?? ''}`.trim(), status);
    }
    const validators: Validators = {};
    if (typeof response.headers.etag === 'string') validators.etag = response.headers.etag;
    if (typeof response.headers['last-modified'] === 'string') validators.lastModified = response.headers['last-modified'];
    if (status === 200 && revalidate?.etag && validators.etag === revalidate.etag) {
      // a server that ignores If-None-Match but sends the same ETag: same file
      response.destroy();
      return { status: 'not-modified' };
    }

    let total: number | undefined;
    if (status === 206) {
      const range = parseContentRange(response.headers['content-range']);
      if (!range || range.start !== offset) {
        response.destroy();
        throw new HttpStatusError(`download of ${url} failed: the server answered a resume at byte ${offset} with range ${response.headers['content-range'] ?? '(none)'}`, status);
      }
      total = range.total;
    } else {
      if (offset > 0) log.info(`the server sent ${url} whole instead of resuming at ${formatBytes(offset)} (a new version, or no Range support); starting over`);
      offset = 0;
      await startOver();
      const length = Number(response.headers['content-length']);
      if (Number.isSafeInteger(length) && response.headers['content-length'] !== undefined) total = length;
    }
    state = { url, ...validators, ...(total !== undefined ? { total } : {}) };
    await writeFile(statePath, JSON.stringify(state));

    const progress = startProgress(`downloading ${url}`, total, { resumedFrom: offset, quiet: options.quiet, intervalMs: options.progressIntervalMs });
    if (offset > 0) log.info(`resuming ${url} at ${formatBytes(offset)}${total ? ` of ${formatBytes(total)}` : ''}`);
    const writer = await PartWriter.open(partPath, offset);
    let done = offset;
    let cut: unknown;
    try {
      const chunks = response[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
      for (;;) {
        let next: IteratorResult<Buffer>;
        try {
          next = await chunks.next();
        } catch (err) {
          cut = err; // the connection broke or stalled: retried
          break;
        }
        if (next.done) break;
        const chunk = next.value;
        if (done === 0 && looksLikeHtml(chunk)) {
          throw new HttpStatusError(`download of ${url} returned an HTML page (HTTP ${status}, ${response.headers['content-type'] ?? 'no content type'}), not an image: a login or error page? check the URL`, status);
        }
        // hashed here, written by libuv's threads, unpacked by another process: the three overlap
        hash.update(chunk);
        writer.write(chunk);
        done += chunk.length;
        progress.update(done);
        if (tee && !tee.write(chunk)) await tee.drained();
        if (writer.full) await writer.drained();
      }
    } finally {
      progress.stop();
      response.destroy();
      await writer.close();
    }
    if (writer.error) throw writer.error;
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
    return { status: 'downloaded', sha256: hash.digest('hex'), size: done, validators };
  }
  throw lastError!;
}

/** Feeds the first `length` bytes of a partial download to the hash and the tee. */
async function replayPart(partPath: string, length: number, hash: Hash, tee: DownloadTee | undefined, signal: AbortSignal | undefined): Promise<void> {
  if (length === 0) return;
  for await (const chunk of createReadStream(partPath, { start: 0, end: length - 1, highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    signal?.throwIfAborted();
    hash.update(chunk);
    if (tee && !tee.write(chunk)) await tee.drained();
  }
}

/**
 * Writes a download into its .part file in batches of about 1 MiB, one writev each, on libuv's threads, so the
 * main thread only receives and hashes. Its error, if any, is in `error` after close().
 */
class PartWriter {
  static readonly BATCH = 1 << 20;
  /** more than this waiting to be written: the reader waits (drained()) */
  static readonly MAX_QUEUED = 32 << 20;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** the batches being written, oldest first; each is written after the one before it */
  private queue: { bytes: number; written: Promise<void> }[] = [];
  private queuedBytes = 0;
  error: unknown;

  private constructor(
    private readonly file: FileHandle,
    private position: number,
  ) {}

  static async open(path: string, offset: number): Promise<PartWriter> {
    return new PartWriter(await open(path, offset > 0 ? 'r+' : 'w'), offset);
  }

  write(chunk: Buffer): void {
    if (this.error) throw this.error;
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes >= PartWriter.BATCH) this.flush();
  }

  get full(): boolean {
    return this.queuedBytes > PartWriter.MAX_QUEUED;
  }

  /** Resolves when the oldest batch is written: the reader goes on as soon as there is room, not when all is written. */
  async drained(): Promise<void> {
    await this.queue[0]?.written;
  }

  /** Writes what is left and closes the file; never throws (see `error`). */
  async close(): Promise<void> {
    this.flush();
    await this.queue.at(-1)?.written;
    await this.file.close().catch((err: unknown) => (this.error ??= err));
  }

  private flush(): void {
    if (this.pendingBytes === 0) return;
    const buffers = this.pending;
    const bytes = this.pendingBytes;
    const position = this.position;
    this.pending = [];
    this.pendingBytes = 0;
    this.position += bytes;
    const previous = this.queue.at(-1)?.written ?? Promise.resolve();
    const batch = {
      bytes,
      written: previous.then(async () => {
        try {
          if (this.error) return;
          const { bytesWritten } = await this.file.writev(buffers, position);
          if (bytesWritten !== bytes) throw new Error(`short write to the partial download (${bytesWritten} of ${bytes} bytes): is the disk full?`);
        } catch (err) {
          this.error ??= err;
        } finally {
          this.queue.shift();
          this.queuedBytes -= bytes;
        }
      }),
    };
    this.queue.push(batch);
    this.queuedBytes += bytes;
  }
}

function describeBodyError(err: Error): string {
  if (err instanceof NetworkError) return err.message.replace(/ \(https?:.*\)$/, '');
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ECONNRESET' || err.message === 'aborted') return 'the connection was cut';
  return err.message;
}

/** Removes a partial download and its state file. */
export async function removePart(partPath: string): Promise<void> {
  await Promise.all([rm(partPath, { force: true }), rm(`${partPath}.json`, { force: true })]);
}
