import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { UnpackWhileDownloading } from './unpack-image.js';

const dir = mkdtempSync(path.join(tmpdir(), 'snabbvm-unpack-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const data = Buffer.concat([randomBytes(300_000), Buffer.alloc(2 << 20), randomBytes(100_000)]);

/** Feeds `bytes` in small chunks, as a download arrives, and waits for the decompressor. */
async function feed(unpack: UnpackWhileDownloading, bytes: Buffer, chunkSize = 7_000) {
  for (let i = 0; i < bytes.length; i += chunkSize) {
    if (!unpack.write(bytes.subarray(i, i + chunkSize))) await unpack.drained();
  }
  return unpack.end();
}

test('gzip and xz are unpacked as the bytes arrive; a plain download is left alone', async () => {
  const dest = path.join(dir, 'out');
  assert.equal(await feed(new UnpackWhileDownloading(dest, 'test'), gzipSync(data)), 'gzip');
  assert.ok(readFileSync(dest).equals(data));
  const xz = execFileSync('xz', ['-1', '-c'], { input: data, maxBuffer: 1 << 26 });
  assert.equal(await feed(new UnpackWhileDownloading(dest, 'test'), xz), 'xz');
  assert.ok(readFileSync(dest).equals(data));
  rmSync(dest);
  assert.equal(await feed(new UnpackWhileDownloading(dest, 'test'), data), undefined);
  assert.equal(existsSync(dest), false, 'nothing written for a plain download');
});

test('corrupt or truncated data is bad input (exit 3); a restart starts a new decompressor', async () => {
  const dest = path.join(dir, 'bad');
  const gz = gzipSync(data);
  await assert.rejects(feed(new UnpackWhileDownloading(dest, 'img'), gz.subarray(0, gz.length - 100)), (err: Error & { exitCode?: number }) => {
    assert.equal(err.exitCode, 3);
    assert.match(err.message, /^img cannot be unpacked as gzip: .*is the file complete\?$/);
    return true;
  });
  const unpack = new UnpackWhileDownloading(dest, 'img');
  unpack.write(gz.subarray(0, 50_000));
  await unpack.restart();
  assert.equal(await feed(unpack, gz), 'gzip');
  assert.ok(readFileSync(dest).equals(data));
});
