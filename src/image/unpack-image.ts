import { createReadStream } from 'node:fs';
import { open, rm, stat } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { inputError } from '../errors.js';
import { log } from '../log.js';
import { ProgramError, runProgram } from '../process/run-program.js';
import { runProgramFileToFile, startProgramStdinToFile } from '../process/run-program-to-file.js';
import { sniffCompression, type Compression } from './probe-image.js';

/**
 * The decompressor for each compression, reading stdin and writing stdout (a file in the cache). xz makes a
 * regular file sparse by itself, zstd with --sparse; bzip2 cannot. gzip is done by zlib instead.
 */
export const DECOMPRESSORS: Record<Exclude<Compression, 'gzip'>, string[]> = {
  xz: ['xz', '--decompress', '--stdout', '--threads=0'],
  bzip2: ['bzip2', '--decompress', '--stdout'],
  zstd: ['zstd', '--decompress', '--stdout', '--quiet', '--sparse'],
};

/**
 * Writes a stream to a file, leaving all-zero chunks as holes: a raw disk image is mostly zeros, and its
 * unpacked copy in the cache then takes only the space of its data. Returns the bytes written (the logical size).
 */
export async function writeSparse(source: AsyncIterable<Buffer>, destPath: string): Promise<number> {
  const file = await open(destPath, 'w');
  let position = 0;
  let zeros = Buffer.alloc(0);
  try {
    for await (const chunk of source) {
      if (zeros.length < chunk.length) zeros = Buffer.alloc(chunk.length);
      if (!chunk.equals(zeros.subarray(0, chunk.length))) await file.write(chunk, 0, chunk.length, position);
      position += chunk.length;
    }
    await file.truncate(position);
  } finally {
    await file.close();
  }
  return position;
}

/**
 * Decompresses src into dest, streaming (never buffering the whole image). A corrupt or truncated input is bad
 * input (exit 3); the caller removes dest.
 */
export async function unpackImage(src: string, compression: Compression, dest: string, describe: string): Promise<number> {
  try {
    if (compression === 'gzip') {
      let size = 0;
      await pipeline(createReadStream(src, { highWaterMark: 1 << 20 }), createGunzip({ chunkSize: 1 << 20 }), async (unpacked: AsyncIterable<Buffer>) => {
        size = await writeSparse(unpacked, dest);
      });
      return size;
    }
    await runProgramFileToFile(DECOMPRESSORS[compression], { stdinPath: src, stdoutPath: dest });
    return (await stat(dest)).size;
  } catch (err) {
    throw unpackError(err, compression, describe);
  }
}

/** A bad compressed stream is bad input (exit 3); a missing program stays a ProgramError (exit 4 in main). */
function unpackError(err: unknown, compression: Compression, describe: string): unknown {
  if (err instanceof ProgramError && err.notFound) return err;
  const why = err instanceof ProgramError ? err.stderrTail.trim().split('\n').pop() : (err as Error).message;
  return inputError(`${describe} cannot be unpacked as ${compression}: ${why || 'corrupt data'}; is the file complete?`, err);
}

/**
 * Unpacks a download while it arrives: each chunk given to write() goes on to the decompressor, whose output is
 * dest. The caller renames dest once end() resolved (and the download's digest matched).
 */
export class UnpackWhileDownloading {
  /** the first bytes, kept until there are enough to tell the compression */
  private head: Buffer[] = [];
  private headBytes = 0;
  /** undefined: not known yet; null: not compressed (nothing to do) */
  private compression: Compression | null | undefined;
  private input: Writable | undefined;
  private finished: Promise<number> | undefined;
  private stop: (() => Promise<void>) | undefined;
  private failure: unknown;

  constructor(
    private readonly dest: string,
    private readonly describe: string,
  ) {}

  /**
   * Takes the next bytes of the download; false means wait for drained() before giving more. What it keeps it
   * copies: the download reuses the chunk's memory.
   */
  write(chunk: Buffer): boolean {
    if (this.failure) throw this.failure;
    if (this.compression === null) return true;
    if (this.compression === undefined) {
      this.head.push(Buffer.from(chunk));
      this.headBytes += chunk.length;
      if (this.headBytes < 16) return true;
      return this.decide();
    }
    return this.input!.write(Buffer.from(chunk));
  }

  /** Resolves when the decompressor takes input again; rejects when it failed. */
  async drained(): Promise<void> {
    if (this.failure) throw this.failure;
    if (!this.input || !this.input.writableNeedDrain) return;
    await Promise.race([new Promise((resolve) => this.input!.once('drain', resolve)), this.finished]);
    if (this.failure) throw this.failure;
  }

  /** The download is complete: waits for the decompressor. Returns the compression, or undefined for a plain download. */
  async end(): Promise<Compression | undefined> {
    if (this.compression === undefined && this.headBytes > 0) this.decide();
    if (!this.input) return undefined;
    this.input.end();
    await this.finished;
    if (this.failure) throw this.failure;
    return this.compression ?? undefined;
  }

  /** Stops the decompressor and removes dest. Safe at any time, and twice. */
  async abort(): Promise<void> {
    this.failure ??= new Error('unpacking was stopped');
    await this.stop?.();
    this.input = undefined;
    await rm(this.dest, { force: true });
  }

  /** The download starts over from its first byte. */
  async restart(): Promise<void> {
    await this.abort();
    this.head = [];
    this.headBytes = 0;
    this.compression = undefined;
    this.failure = undefined;
    this.stop = undefined;
  }

  private decide(): boolean {
    const head = Buffer.concat(this.head);
    this.head = [];
    const compression = sniffCompression(head);
    this.compression = compression ?? null;
    if (!compression) return true;
    log.info(`unpacking ${this.describe} (${compression}) while it downloads`);
    let input: Writable;
    let finished: Promise<number>;
    if (compression === 'gzip') {
      const gunzip = createGunzip({ chunkSize: 1 << 20 });
      input = gunzip;
      finished = writeSparse(gunzip, this.dest);
      this.stop = async () => {
        gunzip.destroy();
        await finished.catch(() => {});
      };
    } else {
      const program = startProgramStdinToFile(DECOMPRESSORS[compression], { stdoutPath: this.dest });
      input = program.stdin;
      finished = program.done.then(async () => (await stat(this.dest)).size);
      this.stop = () => program.kill();
    }
    this.input = input;
    // a decompressor that stops before its input ended found bad data (or was stopped); one from before a
    // restart() says nothing about the new one
    this.finished = finished.then(
      (size) => {
        if (!input.writableEnded && this.input === input) this.failure ??= unpackError(new Error('the compressed data ended before the download did'), compression, this.describe);
        return size;
      },
      (err: unknown) => {
        if (this.input === input) this.failure ??= unpackError(err, compression, this.describe);
        return 0;
      },
    );
    return input.write(head);
  }
}

/** Converts a foreign disk format (vmdk, vhdx, vdi, vpc, ...) to qcow2 with qemu-img, once. */
export async function convertImage(src: string, format: string, dest: string, describe: string): Promise<void> {
  try {
    await runProgram(['qemu-img', 'convert', '-q', '-f', format, '-O', 'qcow2', src, dest]);
  } catch (err) {
    if (err instanceof ProgramError && err.notFound) throw err;
    throw inputError(`${describe} (${format}) cannot be converted to qcow2: ${(err as Error).message}`, err);
  }
}
