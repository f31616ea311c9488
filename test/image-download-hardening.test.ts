/**
 * Issue 15, downloads: strict framing through the real launcher (item 3), resumes that never splice two versions
 * (item 5), credentials in a URL never stored or shown (item 8), and the cache's faults: the disk filling up, a
 * read-only cache folder. Nothing here boots a VM: every launcher run ends before QEMU would start.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cacheKey } from '../src/image/image-cache.js';
import { downloadOptions, resolveUrl } from '../src/image/resolve-base-image.js';
import { hidePasswords } from '../src/log.js';
import { runLauncher, startLauncher } from './helpers/launcher.js';
import { startHttpServer, type TestHttpServer } from './helpers/http-server.js';

const work = mkdtempSync(path.join(tmpdir(), 'snabbvm-hardening-'));
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const fast = downloadOptions({ SNABBVM_HTTP_RETRY_DELAY: '0.1', SNABBVM_HTTP_STALL_TIMEOUT: '30', SNABBVM_HTTP_CONNECT_TIMEOUT: '10' }, true);
const common = ['--accel', 'tcg', '--net', 'none', '--vnc', 'none', '--web', 'none', '--console', 'none'];
const filesUnder = (dir: string): string[] => (existsSync(dir) ? (readdirSync(dir, { recursive: true }) as string[]).filter((f) => statSync(path.join(dir, f)).isFile()).sort() : []);
/** stderr lines that are errors (progress and info lines dropped) */
const errorLines = (stderr: string) => stderr.trim().split('\n').filter((l) => !/^snabbvm: (warning: )?(?!error)/.test(l));

/** A raw disk of `bytes` with a boot signature and random data: each call a different version. */
function rawDisk(bytes: number): Buffer {
  const disk = randomBytes(bytes);
  disk[510] = 0x55;
  disk[511] = 0xaa;
  return disk;
}

let server: TestHttpServer;
before(async () => {
  server = await startHttpServer();
});
after(async () => {
  await server?.close();
  rmSync(work, { recursive: true, force: true });
});

describe('HTTP framing through the launcher (issue 15 item 3)', () => {
  let raw: net.Server;
  let answer = '';
  before(async () => {
    raw = net.createServer((socket) => {
      socket.on('error', () => {});
      socket.once('data', () => socket.write(answer)); // and keeps the connection open: only the framing ends the body
    });
    await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
  });
  after(() => raw.close());

  for (const value of ['-1', '', '0x5', '5, 11']) {
    test(`Content-Length: ${JSON.stringify(value)} ends the run with one line, exit 3 (no spinning)`, { timeout: 60_000 }, async () => {
      answer = `HTTP/1.1 200 OK\r\nContent-Length: ${value}\r\n\r\nhello`;
      const url = `http://127.0.0.1:${(raw.address() as net.AddressInfo).port}/disk.img`;
      const run = startLauncher([...common, '--cache-dir', path.join(work, 'cache-cl'), '--run-dir', path.join(work, 'run'), url], { env: { SNABBVM_HTTP_ATTEMPTS: '1', SNABBVM_HTTP_STALL_TIMEOUT: '5' } });
      const killer = setTimeout(() => run.child.kill('SIGKILL'), 20_000); // the old downloader spun at 100 % CPU and ignored SIGTERM
      const { code } = await run.exited;
      clearTimeout(killer);
      const lines = errorLines(run.stderr());
      assert.equal(code, 3, run.stderr());
      assert.equal(lines.length, 1, run.stderr());
      assert.match(lines[0]!, /^snabbvm: error: http:\/\/127\.0\.0\.1:\d+\/disk\.img: the server sent a malformed Content-Length/);
    });
  }

  test('SIGTERM ends a download from a server that sends a head and then nothing', { timeout: 60_000 }, async () => {
    answer = 'HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n';
    const url = `http://127.0.0.1:${(raw.address() as net.AddressInfo).port}/slow.img`;
    const run = startLauncher([...common, '--cache-dir', path.join(work, 'cache-term'), '--run-dir', path.join(work, 'run'), url], { env: { SNABBVM_HTTP_STALL_TIMEOUT: '60' } });
    await run.waitFor(/downloading/, 20_000).catch(() => {});
    await new Promise((r) => setTimeout(r, 500));
    const t0 = Date.now();
    run.child.kill('SIGTERM');
    const killer = setTimeout(() => run.child.kill('SIGKILL'), 20_000);
    await run.exited;
    clearTimeout(killer);
    assert.ok(Date.now() - t0 < 10_000, `ended ${Date.now() - t0} ms after SIGTERM`);
    assert.deepEqual(filesUnder(path.join(work, 'cache-term')), []);
  });
});

describe('a resume never splices two versions (issue 15 item 5)', () => {
  test('without a strong ETag or Last-Modified, a partial file is not resumed: the download starts over', { timeout: 60_000 }, async () => {
    const a = rawDisk(3 << 20);
    const b = rawDisk(3 << 20);
    const fileA = path.join(work, 'noval-a.img');
    const fileB = path.join(work, 'noval-b.img');
    writeFileSync(fileA, a);
    writeFileSync(fileB, b);
    const cacheDir = path.join(work, 'cache-noval');
    server.serve('/noval.img', fileA, { etag: false, lastModified: false });
    server.fault('/noval.img', { stallAfterBytes: 1_000_000 });
    await assert.rejects(resolveUrl(server.url('/noval.img'), { cacheDir }, { ...fast, attempts: 1, http: { ...fast.http, stallTimeoutMs: 1000 } }));
    server.clearFaults();
    server.serve('/noval.img', fileB, { etag: false, lastModified: false }); // a new version, same size, no validator
    const base = await resolveUrl(server.url('/noval.img'), { cacheDir }, fast);
    const last = server.bodyRequests('/noval.img').at(-1)!;
    assert.equal(last.headers.range, undefined, 'no Range request without a validator');
    assert.equal(last.status, 200);
    assert.equal(sha256(readFileSync(base.path)), sha256(b), 'the cache holds version B whole, not A spliced with B');
  });

  test('a 206 whose total differs from the stored one (a server that ignores If-Range) starts over', { timeout: 60_000 }, async () => {
    let current = rawDisk(3 << 20);
    let cutAt: number | undefined = 1_000_000;
    const seen: { range?: string; ifRange?: string; status: number }[] = [];
    // always the same ETag, and Range honoured whatever If-Range says: the broken server that splices
    const broken = http.createServer((req, res) => {
      const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
      const start = range ? Number(range[1]) : 0;
      const status = range ? 206 : 200;
      seen.push({ range: req.headers.range, ifRange: req.headers['if-range'] as string | undefined, status });
      const headers: http.OutgoingHttpHeaders = { etag: '"same"', 'content-length': current.length - start };
      if (range) headers['content-range'] = `bytes ${start}-${current.length - 1}/${current.length}`;
      res.writeHead(status, headers);
      if (cutAt !== undefined) {
        res.write(current.subarray(start, cutAt));
        cutAt = undefined;
        setTimeout(() => res.socket?.destroy(), 100);
        return;
      }
      res.end(current.subarray(start));
    });
    await new Promise<void>((r) => broken.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(broken.address() as net.AddressInfo).port}/changing.img`;
    const cacheDir = path.join(work, 'cache-total');
    try {
      await assert.rejects(resolveUrl(url, { cacheDir }, { ...fast, attempts: 1 }));
      current = rawDisk(4 << 20); // version B, a different size
      const base = await resolveUrl(url, { cacheDir }, fast);
      assert.equal(sha256(readFileSync(base.path)), sha256(current), 'the cache holds version B whole');
      assert.deepEqual(
        seen.map((s) => s.status),
        [200, 206, 200],
        'cut, resumed (answered with another total), started over',
      );
      assert.equal(seen[1]!.ifRange, '"same"');
    } finally {
      broken.close();
    }
  });
});

describe('credentials in an image URL are never stored or shown (issue 15 item 8)', () => {
  test('the partial state, meta.json, the folder name and every error message have no password', { timeout: 60_000 }, async () => {
    const disk = path.join(work, 'secret.img');
    writeFileSync(disk, rawDisk(3 << 20));
    server.serve('/secret.img', disk);
    const url = server.url('/secret.img').replace('://', '://mirror:hunter2secret@');
    const cacheDir = path.join(work, 'cache-secret');
    const everything = () => filesUnder(cacheDir).map((f) => `${f}\n${readFileSync(path.join(cacheDir, f), 'latin1')}`).join('\n');

    server.fault('/secret.img', { stallAfterBytes: 1_000_000 });
    await assert.rejects(resolveUrl(url, { cacheDir }, { ...fast, attempts: 1, http: { ...fast.http, stallTimeoutMs: 1000 } }), (err: Error) => {
      assert.doesNotMatch(err.message, /hunter2secret/);
      assert.match(err.message, /mirror:\*\*\*@/);
      return true;
    });
    server.clearFaults();
    assert.ok(filesUnder(cacheDir).some((f) => f.endsWith('download.part.json')), 'a partial download was kept');
    assert.doesNotMatch(everything(), /hunter2secret/, 'download.part.json');

    await resolveUrl(url, { cacheDir }, fast);
    assert.equal(server.bodyRequests('/secret.img').at(-1)!.status, 206, 'resumed: the state without the password still matches');
    assert.ok(filesUnder(cacheDir).some((f) => f.endsWith('meta.json')));
    assert.doesNotMatch(everything(), /hunter2secret/, 'meta.json');
    assert.equal(existsSync(path.join(cacheDir, cacheKey(url))), false, 'the folder is not named after the URL with its password');

    server.fault('/secret.img', { status: 404 });
    const r = await runLauncher([...common, '--cache-dir', path.join(work, 'cache-secret-404'), '--run-dir', path.join(work, 'run'), url.replace('secret.img', 'missing.img')], { env: { SNABBVM_HTTP_ATTEMPTS: '1' } });
    server.clearFaults();
    assert.equal(r.code, 3, r.stderr);
    assert.doesNotMatch(r.stderr, /hunter2secret/);
  });

  test('a user name alone (often a token) is hidden too', () => {
    assert.equal(hidePasswords('from https://ghp_abc123@example.com/a.img'), 'from https://***@example.com/a.img');
    assert.equal(hidePasswords('https://u:p@h/x and http://h/y'), 'https://u:***@h/x and http://h/y');
  });
});

/** Mounting a tmpfs needs root (CAP_SYS_ADMIN). */
function whyNoMount(): string | undefined {
  const probe = path.join(work, 'mount-probe');
  mkdirSync(probe, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1M', 'tmpfs', probe], { stdio: 'ignore' });
    execFileSync('umount', [probe]);
    return undefined;
  } catch {
    return 'cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN)';
  }
}

describe('the cache faults', { skip: whyNoMount() }, () => {
  test('the disk fills up during a download: one line, exit 4, no partial entry; the next run with room works', { timeout: 120_000 }, async () => {
    const cacheDir = path.join(work, 'cache-full');
    mkdirSync(cacheDir, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=3M', 'tmpfs', cacheDir]);
    try {
      const disk = path.join(work, 'big.img');
      writeFileSync(disk, rawDisk(6 << 20));
      execFileSync('xz', ['-0', '-k', '-f', '-T1', disk]);
      server.serve('/big.img', disk);
      server.serve('/big.img.xz', `${disk}.xz`);
      for (const file of ['big.img', 'big.img.xz']) {
        const r = await runLauncher([...common, '--cache-dir', cacheDir, '--run-dir', path.join(work, 'run'), server.url(`/${file}`)], { env: { SNABBVM_HTTP_ATTEMPTS: '1' } });
        const lines = errorLines(r.stderr);
        assert.equal(r.code, 4, r.stderr);
        assert.equal(lines.length, 1, r.stderr);
        assert.match(lines[0]!, new RegExp(`^snabbvm: error: the image cache ${cacheDir} is full while downloading http://127\\.0\\.0\\.1:\\d+/${file.replace('.', '\\.')}: free some space there`));
        assert.deepEqual(filesUnder(cacheDir), [], `nothing left in the cache after ${file}`);
      }
      execFileSync('mount', ['-o', 'remount,size=64M', cacheDir]);
      const base = await resolveUrl(server.url('/big.img.xz'), { cacheDir }, fast);
      assert.equal(sha256(readFileSync(base.path)), sha256(readFileSync(disk)));
    } finally {
      execFileSync('umount', ['-l', cacheDir]);
    }
  });

  test('a read-only cache folder: one line, exit 4, says how to fix it', { timeout: 60_000 }, async () => {
    const cacheDir = path.join(work, 'cache-ro');
    mkdirSync(cacheDir, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1M', 'tmpfs', cacheDir]);
    try {
      const disk = path.join(work, 'ro.img');
      writeFileSync(disk, rawDisk(1 << 20));
      server.serve('/ro.img', disk);
      const r = await runLauncher([...common, '--cache-dir', cacheDir, '--run-dir', path.join(work, 'run'), server.url('/ro.img')]);
      const lines = errorLines(r.stderr);
      assert.equal(r.code, 4, r.stderr);
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0]!, new RegExp(`^snabbvm: error: the image cache ${cacheDir} cannot be written \\(EROFS\\); mount a writable volume there or give --cache-dir$`));
    } finally {
      execFileSync('umount', ['-l', cacheDir]);
    }
  });
});
