import { createHash, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { pipeline } from 'node:stream/promises';
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

async function hashFile(path: string): Promise<Hash> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path, { highWaterMark: 1 << 20 }), async function* (source: AsyncIterable<Buffer>) {
    for await (const chunk of source) hash.update(chunk);
  });
  return hash;
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

/**
 * Downloads url into partPath, hashing the data as it streams. A partial file from an earlier run or an earlier
 * attempt is resumed with a Range request (If-Range guards against a changed file). With `revalidate`, the
 * first request is conditional, and an unchanged remote file gives 'not-modified' with no body.
 * Leaves partPath complete on success; the caller checks the digest and renames it. On a network failure
 * after all attempts, the partial file is kept (with its state file) for the next run to resume.
 */
export async function downloadFile(url: string, partPath: string, options: DownloadOptions, revalidate?: Validators): Promise<DownloadResult> {
  const statePath = `${partPath}.json`;
  let state = await readPartState(statePath, url);
  let offset = state ? await sizeOf(partPath) : 0;
  if (!state || offset === 0) {
    await rm(partPath, { force: true });
    offset = 0;
  }
  let lastError: Error | undefined;

  for (let attempt = 1; attempt <= options.attempts; attempt++) {
    if (attempt > 1) {
      const delay = options.retryDelayMs * 2 ** (attempt - 2);
      log.warn(`${lastError!.message}; retrying in ${delay / 1000} s (attempt ${attempt} of ${options.attempts})`);
      await sleep(delay);
      offset = await sizeOf(partPath);
    }
    const headers = buildRequestHeaders(offset, state, offset === 0 ? revalidate : undefined);
    let response: IncomingMessage;
    try {
      ({ response } = await httpGet(url, headers, options.http));
    } catch (err) {
      if (!(err instanceof NetworkError)) throw err;
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
      const length = Number(response.headers['content-length']);
      if (Number.isSafeInteger(length) && response.headers['content-length'] !== undefined) total = length;
    }
    state = { url, ...validators, ...(total !== undefined ? { total } : {}) };
    await writeFile(statePath, JSON.stringify(state));

    const hash = offset > 0 ? await hashFile(partPath) : createHash('sha256');
    let done = offset;
    const progress = startProgress(`downloading ${url}`, total, { resumedFrom: offset, quiet: options.quiet, intervalMs: options.progressIntervalMs });
    if (offset > 0) log.info(`resuming ${url} at ${formatBytes(offset)}${total ? ` of ${formatBytes(total)}` : ''}`);
    try {
      let first = offset === 0;
      await pipeline(
        response,
        async function* (source: AsyncIterable<Buffer>) {
          for await (const chunk of source) {
            if (first) {
              first = false;
              if (looksLikeHtml(chunk)) {
                throw new HttpStatusError(`download of ${url} returned an HTML page (HTTP ${status}, ${response.headers['content-type'] ?? 'no content type'}), not an image: a login or error page? check the URL`, status);
              }
            }
            hash.update(chunk);
            done += chunk.length;
            progress.update(done);
            yield chunk;
          }
        },
        createWriteStream(partPath, { flags: offset > 0 ? 'a' : 'w', highWaterMark: 1 << 20 }),
      );
    } catch (err) {
      progress.stop();
      if (err instanceof HttpStatusError) throw err;
      lastError = new NetworkError(`download of ${url} was interrupted at ${formatBytes(await sizeOf(partPath))}${total ? ` of ${formatBytes(total)}` : ''} (${describeBodyError(err as Error)})`, { cause: err });
      continue;
    }
    progress.stop();
    if (total !== undefined && done !== total) {
      lastError = new NetworkError(`download of ${url} ended at ${formatBytes(done)} of ${formatBytes(total)} (the connection closed early)`);
      continue;
    }
    return { status: 'downloaded', sha256: hash.digest('hex'), size: done, validators };
  }
  throw lastError!;
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
