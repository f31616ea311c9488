import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { inputError } from '../errors.js';
import { ProgramError, runProgram } from '../process/run-program.js';
import { runProgramFileToFile } from '../process/run-program-to-file.js';
import type { Compression } from './probe-image.js';

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
    if (err instanceof ProgramError && err.notFound) throw err; // the host lacks the program: exit 4 in main
    const why = err instanceof ProgramError ? err.stderrTail.trim().split('\n').pop() : (err as Error).message;
    throw inputError(`${describe} cannot be unpacked as ${compression}: ${why ?? 'corrupt data'}; is the file complete?`, err);
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
