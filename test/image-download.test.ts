/**
 * Images from anywhere, without booting: downloads from a local fault-injecting HTTP server (resume, revalidation,
 * offline fallback, 404/500, a stall, an HTML page, digests, redirects, a lock between two launchers), compressed
 * and foreign-format images unpacked or converted once into the cache, and bad input through the real launcher.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, cpSync, createReadStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { acquireCacheLock } from '../src/image/cache-lock.js';
import { ENTRY, entryDirFor } from '../src/image/image-cache.js';
import { downloadOptions, resolveBaseImage, resolveUrl } from '../src/image/resolve-base-image.js';
import { launcherPath } from './helpers/launcher.js';
import { runLauncher, startLauncher } from './helpers/launcher.js';
import { startHttpServer, type TestHttpServer } from './helpers/http-server.js';

const work = mkdtempSync(path.join(tmpdir(), 'snabbvm-image-'));
const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');
/** fast retries, so faults take seconds; timeouts long enough for a starved machine */
const fast = downloadOptions({ SNABBVM_HTTP_RETRY_DELAY: '0.1', SNABBVM_HTTP_STALL_TIMEOUT: '30', SNABBVM_HTTP_CONNECT_TIMEOUT: '10' }, true);
let cacheCount = 0;
const newCacheDir = () => path.join(work, `cache-${++cacheCount}`);
/** every file under a folder, relative */
const filesUnder = (dir: string): string[] => (existsSync(dir) ? (readdirSync(dir, { recursive: true }) as string[]).filter((f) => statSync(path.join(dir, f)).isFile()).sort() : []);
const tempFilesUnder = (dir: string) => filesUnder(dir).filter((f) => /\.(part|tmp)(\.json)?$|lock/.test(f));
/** the live child processes of a pid, as "pid command" */
const childrenOf = (pid: number): string[] =>
  readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .flatMap((d) => {
      try {
        const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        return ppid === pid ? [`${d} ${readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0/g, ' ').trim()}`] : [];
      } catch {
        return [];
      }
    });

/**
 * A small bootable-looking disk for the fault tests: 24 MiB raw with an MBR signature and 8 MiB of random data,
 * as qcow2. (The boot tests use the real cloud image.)
 */
const smallRaw = path.join(work, 'small.raw');
const smallQcow2 = path.join(work, 'small.qcow2');
let server: TestHttpServer;

before(async () => {
  execFileSync('truncate', ['-s', '24M', smallRaw]);
  execFileSync('dd', ['if=/dev/urandom', `of=${smallRaw}`, 'bs=1M', 'count=8', 'seek=4', 'conv=notrunc', 'status=none']);
  execFileSync('bash', ['-c', `printf '\\x55\\xaa' | dd of=${smallRaw} bs=1 seek=510 conv=notrunc status=none`]);
  execFileSync('qemu-img', ['convert', '-O', 'qcow2', smallRaw, smallQcow2]);
  server = await startHttpServer();
  server.serve('/small.qcow2', smallQcow2);
});
after(async () => {
  await server?.close();
  rmSync(work, { recursive: true, force: true });
});

describe('downloads', () => {
  test('a connection cut mid-body is resumed with a Range request; the result is the same file', async () => {
    server.fault('/small.qcow2', { cutAfterBytes: 3_000_000, times: 1 });
    const cacheDir = newCacheDir();
    const base = await resolveUrl(server.url('/small.qcow2'), { cacheDir }, fast);
    const reqs = server.bodyRequests('/small.qcow2');
    const cut = reqs.findIndex((r) => r.status === 200 && r.bodyBytes === 3_000_000);
    assert.ok(cut >= 0, 'the first response was cut after 3 MB');
    const resume = reqs[cut + 1]!;
    assert.equal(resume.status, 206);
    // from what the client got: the cut may drop some of the 3 MB the server had written into the socket
    const from = Number(/^bytes=(\d+)-$/.exec(resume.headers.range ?? '')?.[1]);
    assert.ok(from > 0 && from <= 3_000_000, `resumed at ${resume.headers.range}`);
    assert.ok(resume.headers['if-range'], 'the resume is guarded by If-Range');
    assert.equal(base.kind, 'disk');
    assert.equal(sha256(base.path), sha256(smallQcow2));
    assert.deepEqual(tempFilesUnder(cacheDir), [], 'no temp file left');

    // a second run downloads nothing: ETag revalidation answers 304
    const before = server.requests.length;
    const again = await resolveUrl(server.url('/small.qcow2'), { cacheDir }, fast);
    assert.equal(again.path, base.path);
    const newRequests = server.requests.slice(before);
    assert.deepEqual(newRequests.map((r) => r.status), [304]);
    assert.equal(newRequests[0]!.headers['if-none-match'] !== undefined, true);

    // offline: the cached copy is used, with a warning
    const shortLived = await startHttpServer();
    shortLived.serve('/small.qcow2', smallQcow2);
    const offlineCache = newCacheDir();
    await resolveUrl(shortLived.url('/small.qcow2'), { cacheDir: offlineCache }, fast);
    await shortLived.close();
    const cached = await resolveUrl(shortLived.url('/small.qcow2'), { cacheDir: offlineCache }, { ...fast, attempts: 1 });
    assert.equal(sha256(cached.path), sha256(smallQcow2));
  });

  test('a chunked body (no Content-Length), cut and resumed, and a download over https, give the same file', async () => {
    server.serve('/chunked.qcow2', smallQcow2, { chunked: true });
    server.fault('/chunked.qcow2', { cutAfterBytes: 3_000_000, times: 1 });
    const cacheDir = newCacheDir();
    // with credentials in the URL, sent as Basic auth
    const base = await resolveUrl(server.url('/chunked.qcow2').replace('://', '://mirror:s%40cret@'), { cacheDir }, fast);
    const reqs = server.bodyRequests('/chunked.qcow2');
    assert.equal(reqs[0]!.headers.authorization, `Basic ${Buffer.from('mirror:s@cret').toString('base64')}`);
    assert.deepEqual(reqs.map((r) => r.status), [200, 206], 'cut once, then resumed');
    assert.equal(reqs[0]!.bodyBytes, 3_000_000);
    assert.equal(sha256(base.path), sha256(smallQcow2));

    // https, with the server's certificate trusted through NODE_EXTRA_CA_CERTS (read at start: a child process)
    const key = path.join(work, 'https.key');
    const cert = path.join(work, 'https.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const https = await import('node:https');
    const tls = https.createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (_req, res) => {
      res.writeHead(200, { 'content-length': statSync(smallQcow2).size });
      createReadStream(smallQcow2).pipe(res);
    });
    await new Promise<void>((r) => tls.listen(0, '127.0.0.1', r));
    try {
      const url = `https://127.0.0.1:${(tls.address() as { port: number }).port}/disk.qcow2`;
      const resolver = new URL('../src/image/resolve-base-image.js', import.meta.url).href;
      const script = `const m = await import(${JSON.stringify(resolver)}); console.log((await m.resolveUrl(process.argv[1], { cacheDir: process.argv[2] }, m.downloadOptions({}, true))).path);`;
      // (not spawnSync: the server runs in this process)
      const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script, url, newCacheDir()], { env: { ...process.env, NODE_EXTRA_CA_CERTS: cert } });
      assert.equal(sha256(stdout.trim()), sha256(smallQcow2));
    } finally {
      tls.close();
    }
  });

  test('an interrupted run leaves a partial file that the next run resumes', async () => {
    const cacheDir = newCacheDir();
    server.fault('/small.qcow2', { stallAfterBytes: 2_000_000 });
    const opts = { ...fast, attempts: 2, http: { ...fast.http, stallTimeoutMs: 1000 } };
    const t0 = Date.now();
    await assert.rejects(resolveUrl(server.url('/small.qcow2'), { cacheDir }, opts), (err: Error & { exitCode?: number }) => {
      assert.equal(err.exitCode, 3);
      assert.match(err.message, /download of http:\/\/127\.0\.0\.1:\d+\/small\.qcow2 was interrupted at .* \(no data from 127\.0\.0\.1:\d+ for 1 s\)/);
      return true;
    });
    assert.ok(Date.now() - t0 < 15_000, 'the stall timed out');
    assert.deepEqual(tempFilesUnder(cacheDir).map((f) => path.basename(f)), ['download.part', 'download.part.json'], 'the partial file is kept for a resume');
    server.clearFaults();
    const base = await resolveUrl(server.url('/small.qcow2'), { cacheDir }, fast);
    const last = server.bodyRequests('/small.qcow2').at(-1)!;
    assert.equal(last.status, 206);
    assert.match(last.headers.range!, /^bytes=\d+-$/);
    assert.equal(sha256(base.path), sha256(smallQcow2));
    assert.deepEqual(tempFilesUnder(cacheDir), []);
  });

  for (const [what, fault, message] of [
    ['404', { status: 404 }, /download of http:\/\/127\.0\.0\.1:\d+\/small\.qcow2 failed: HTTP 404 Not Found/],
    ['500', { status: 500 }, /download of http:\/\/127\.0\.0\.1:\d+\/small\.qcow2 failed: HTTP 500 Internal Server Error/],
    ['an HTML page with 200', { html: true }, /returned an HTML page \(HTTP 200, text\/html; charset=utf-8\), not an image/],
  ] as const) {
    test(`${what}: exit 3, the URL and status named, nothing kept`, async () => {
      server.fault('/small.qcow2', fault);
      const cacheDir = newCacheDir();
      await assert.rejects(resolveUrl(server.url('/small.qcow2'), { cacheDir }, fast), (err: Error & { exitCode?: number }) => {
        assert.equal(err.exitCode, 3);
        assert.match(err.message, message);
        return true;
      });
      server.clearFaults();
      assert.deepEqual(filesUnder(cacheDir), [], 'the cache keeps nothing');
    });
  }

  test('--sha256: a wrong digest keeps nothing, even an earlier good copy; a right one pins the copy (no request)', async () => {
    const cacheDir = newCacheDir();
    const url = server.url('/small.qcow2');
    await resolveUrl(url, { cacheDir }, fast);
    await assert.rejects(resolveUrl(url, { cacheDir, sha256: 'ab'.repeat(32) }, fast), (err: Error & { exitCode?: number }) => {
      assert.equal(err.exitCode, 3);
      assert.match(err.message, new RegExp(`the SHA-256 of ${url} is ${sha256(smallQcow2)}, not abab.* nothing was kept`));
      return true;
    });
    assert.deepEqual(filesUnder(cacheDir), []);
    const good = sha256(smallQcow2);
    await resolveUrl(url, { cacheDir, sha256: good }, fast);
    const count = server.requests.length;
    const base = await resolveUrl(url, { cacheDir, sha256: good }, fast);
    assert.equal(server.requests.length, count, 'a matching digest needs no request at all');
    assert.equal(sha256(base.path), good);
  });

  test('--digest sha512: checked against the download, kept in the cache entry, and a match needs no request', async () => {
    const cacheDir = newCacheDir();
    const url = server.url('/small.qcow2');
    const good = createHash('sha512').update(readFileSync(smallQcow2)).digest('hex');
    await assert.rejects(resolveUrl(url, { cacheDir, sha512: 'ab'.repeat(64) }, fast), new RegExp(`the SHA-512 of ${url} is ${good}, not abab.* nothing was kept`));
    assert.deepEqual(filesUnder(cacheDir), []);
    await resolveUrl(url, { cacheDir, sha512: good }, fast);
    const count = server.requests.length;
    const base = await resolveUrl(url, { cacheDir, sha512: good }, fast);
    assert.equal(server.requests.length, count, 'a matching digest needs no request at all');
    assert.equal(sha256(base.path), sha256(smallQcow2));
  });

  test('redirects are followed, with a bound', async () => {
    server.redirect('/r1', '/r2', 301);
    server.redirect('/r2', server.url('/small.qcow2'), 302);
    const base = await resolveUrl(server.url('/r1'), { cacheDir: newCacheDir() }, fast);
    assert.equal(sha256(base.path), sha256(smallQcow2));
    server.redirect('/loop', '/loop');
    const cacheDir = newCacheDir();
    await assert.rejects(resolveUrl(server.url('/loop'), { cacheDir }, fast), /redirected more than 10 times/);
    assert.deepEqual(filesUnder(cacheDir), []);
  });

  test('two launchers fetching the same URL: one downloads, the other waits and uses it', async () => {
    server.fault('/small.qcow2', { bytesPerSecond: 20 * 2 ** 20 });
    const cacheDir = newCacheDir();
    const before = server.bodyRequests('/small.qcow2').length;
    // the second is a separate process, as in two containers sharing the cache volume
    const script = `import { resolveUrl, downloadOptions } from ${JSON.stringify(path.resolve(path.dirname(launcherPath), '../image/resolve-base-image.js'))};
      const b = await resolveUrl(process.argv[1], { cacheDir: process.argv[2] }, downloadOptions({}, true)); console.log(b.path);`;
    const other = spawn(process.execPath, ['--input-type=module', '-e', script, server.url('/small.qcow2'), cacheDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let otherOut = '';
    let otherErr = '';
    other.stdout.on('data', (b) => (otherOut += b));
    other.stderr.on('data', (b) => (otherErr += b));
    const otherDone = new Promise<number | null>((r) => other.on('exit', r));
    await new Promise((r) => setTimeout(r, 300));
    const base = await resolveUrl(server.url('/small.qcow2'), { cacheDir }, fast);
    assert.equal(await otherDone, 0, otherErr);
    server.clearFaults();
    assert.equal(otherOut.trim(), base.path);
    assert.equal(sha256(base.path), sha256(smallQcow2));
    const bodies = server.bodyRequests('/small.qcow2').slice(before);
    assert.equal(bodies.length, 1, `one body download, not ${bodies.length}`);
  });

  test('an ISO by URL is a CD-ROM base', async () => {
    const isoDir = path.join(work, 'iso-content');
    mkdirSync(isoDir);
    writeFileSync(path.join(isoDir, 'README'), 'hello');
    const iso = path.join(work, 'install.iso');
    execFileSync('genisoimage', ['-quiet', '-V', 'TEST', '-o', iso, isoDir]);
    server.serve('/install.iso', iso);
    const base = await resolveUrl(server.url('/install.iso'), { cacheDir: newCacheDir() }, fast);
    assert.equal(base.kind, 'iso');
    assert.equal(sha256(base.path), sha256(iso));
  });
});

describe('compressed and foreign-format images', () => {
  const compressions = [
    ['gz', ['gzip', '-c']],
    ['xz', ['xz', '-T2', '-1', '-c']],
    ['bz2', ['bzip2', '-c']],
    ['zst', ['zstd', '-q', '-c']],
  ] as const;

  test('a .gz/.xz/.bz2/.zst URL is unpacked once into the cache (judged by content: the names are wrong on purpose)', async () => {
    const cacheDir = newCacheDir();
    for (const [ext, argv] of compressions) {
      const file = path.join(work, `small-${ext}.img`); // no telling extension
      execFileSync('bash', ['-c', `${argv.join(' ')} ${smallRaw} > ${file}`]);
      server.serve(`/small.raw.${ext}`, file);
      const base = await resolveUrl(server.url(`/small.raw.${ext}`), { cacheDir }, fast);
      assert.equal(base.kind === 'disk' && base.format, 'raw', ext);
      assert.equal(sha256(base.path), sha256(smallRaw), ext);
      if (ext !== 'bz2') assert.ok(statSync(base.path).blocks * 512 < 12 * 2 ** 20, `${ext}: the unpacked raw image is sparse`);
      const entry = path.dirname(base.path);
      assert.deepEqual(readdirSync(entry).sort(), ['meta.json', 'unpacked'], `${ext}: only the unpacked image is kept`);
      // the second run: a 304, and no unpacking again
      const again = await resolveUrl(server.url(`/small.raw.${ext}`), { cacheDir }, fast);
      assert.equal(again.path, base.path);
      assert.equal(server.requests.at(-1)!.status, 304);
    }
  });

  test('a local compressed file is unpacked to the cache, never next to it; a plain qcow2 is used where it is', async () => {
    const u = path.join(work, 'u');
    mkdirSync(u);
    execFileSync('bash', ['-c', `xz -T2 -1 -c ${smallQcow2} > ${u}/disk.qcow2.xz`]);
    cpSync(smallQcow2, path.join(u, 'plain.qcow2'));
    const cacheDir = newCacheDir();
    const config = (file: string) => ({ image: { kind: 'file' as const, path: path.join(u, file) }, cacheDir, quiet: true, persist: false, dataDir: work, name: 'x' });
    const base = await resolveBaseImage(config('disk.qcow2.xz'));
    assert.equal(base.kind === 'disk' && base.format, 'qcow2');
    assert.ok(base.path.startsWith(cacheDir));
    assert.equal(sha256(base.path), sha256(smallQcow2));
    const mtime = statSync(base.path).mtimeMs;
    assert.equal((await resolveBaseImage(config('disk.qcow2.xz'))).path, base.path);
    assert.equal(statSync(base.path).mtimeMs, mtime, 'unpacked once');
    const plain = await resolveBaseImage(config('plain.qcow2'));
    assert.equal(plain.path, path.join(u, 'plain.qcow2'), 'no copy of a plain qcow2');
    assert.deepEqual(readdirSync(u).sort(), ['disk.qcow2.xz', 'plain.qcow2'], 'nothing written into /u');
  });

  test('vmdk, vhdx, vdi and vpc are converted to qcow2 once', async () => {
    const cacheDir = newCacheDir();
    for (const format of ['vmdk', 'vhdx', 'vdi', 'vpc']) {
      const file = path.join(work, `small.${format}`);
      execFileSync('qemu-img', ['convert', '-O', format, smallRaw, file]);
      const base = await resolveBaseImage({ image: { kind: 'file', path: file }, cacheDir, quiet: true, persist: false, dataDir: work, name: 'x' });
      assert.equal(base.kind === 'disk' && base.format, 'qcow2', format);
      assert.equal(path.basename(base.path), 'converted.qcow2');
      execFileSync('qemu-img', ['compare', '-q', smallRaw, base.path]); // throws if the contents differ
    }
    // the same for a URL: the download is dropped once converted
    server.serve('/small.vmdk', path.join(work, 'small.vmdk'));
    const base = await resolveUrl(server.url('/small.vmdk'), { cacheDir }, fast);
    assert.deepEqual(readdirSync(path.dirname(base.path)).sort(), ['converted.qcow2', 'meta.json']);
  });
});

describe('unpacking while downloading', () => {
  const smallXz = path.join(work, 'small-stream.xz');
  before(() => {
    execFileSync('bash', ['-c', `xz -T2 -1 -c ${smallRaw} > ${smallXz}`]);
    server.serve('/stream.raw.xz', smallXz);
  });

  test('a cut mid-body is resumed into the running decompressor; the result is the same image', async () => {
    server.fault('/stream.raw.xz', { cutAfterBytes: 3_000_000, times: 1 });
    const cacheDir = newCacheDir();
    const before = server.bodyRequests('/stream.raw.xz').length;
    const base = await resolveUrl(server.url('/stream.raw.xz'), { cacheDir }, fast);
    const reqs = server.bodyRequests('/stream.raw.xz').slice(before);
    assert.deepEqual(reqs.map((r) => r.status), [200, 206]);
    assert.equal(sha256(base.path), sha256(smallRaw));
    assert.deepEqual(readdirSync(path.dirname(base.path)).sort(), ['meta.json', 'unpacked']);
  });

  test('a partial download from an earlier run is unpacked from its start, then resumed', async () => {
    const cacheDir = newCacheDir();
    server.fault('/stream.raw.xz', { stallAfterBytes: 2_000_000 });
    const opts = { ...fast, attempts: 1, http: { ...fast.http, stallTimeoutMs: 1000 } };
    await assert.rejects(resolveUrl(server.url('/stream.raw.xz'), { cacheDir }, opts), /was interrupted at/);
    server.clearFaults();
    assert.deepEqual(tempFilesUnder(cacheDir).map((f) => path.basename(f)), ['download.part', 'download.part.json'], 'only the partial download is kept, not a half unpacked file');
    assert.deepEqual(childrenOf(process.pid).filter((c) => / xz /.test(` ${c} `)), [], 'no decompressor left running');
    const base = await resolveUrl(server.url('/stream.raw.xz'), { cacheDir }, fast);
    const last = server.bodyRequests('/stream.raw.xz').at(-1)!;
    assert.equal(last.status, 206);
    assert.equal(sha256(base.path), sha256(smallRaw));
    assert.deepEqual(tempFilesUnder(cacheDir), []);
  });

  test('a wrong digest or corrupt data keeps nothing and leaves no decompressor', async () => {
    const cacheDir = newCacheDir();
    await assert.rejects(resolveUrl(server.url('/stream.raw.xz'), { cacheDir, sha256: 'cd'.repeat(32) }, fast), /the SHA-256 of .* nothing was kept/);
    assert.deepEqual(filesUnder(cacheDir), []);
    // an xz stream with garbage in the middle: the decompressor fails during the download
    const corrupt = path.join(work, 'corrupt.xz');
    const bytes = readFileSync(smallXz);
    bytes.fill(0x55, 1_000_000, 1_100_000);
    writeFileSync(corrupt, bytes);
    server.serve('/corrupt.raw.xz', corrupt);
    await assert.rejects(resolveUrl(server.url('/corrupt.raw.xz'), { cacheDir }, fast), (err: Error & { exitCode?: number }) => {
      assert.equal(err.exitCode, 3);
      assert.match(err.message, /corrupt\.raw\.xz cannot be unpacked as xz: .*is the file complete\?/);
      return true;
    });
    assert.deepEqual(filesUnder(cacheDir), []);
    assert.deepEqual(childrenOf(process.pid).filter((c) => / xz /.test(` ${c} `)), []);
  });

  test('a stop signal ends a wait for another launcher\'s lock at once', async () => {
    const cacheDir = newCacheDir();
    const url = server.url('/stream.raw.xz');
    mkdirSync(entryDirFor(cacheDir, url), { recursive: true });
    const release = await acquireCacheLock(path.join(entryDirFor(cacheDir, url), ENTRY.lock), url);
    try {
      const stop = new AbortController();
      const reason = new Error('stopped');
      setTimeout(() => stop.abort(reason), 300);
      const t0 = Date.now();
      await assert.rejects(resolveUrl(url, { cacheDir }, fast, stop.signal), (err) => err === reason);
      assert.ok(Date.now() - t0 < 3000);
    } finally {
      await release();
    }
  });

  test('SIGTERM during a slow download: the launcher exits at once, as stopped before the VM started, leaving nothing', { timeout: 60_000 }, async () => {
    server.serve('/slow.raw.xz', smallXz);
    server.fault('/slow.raw.xz', { bytesPerSecond: 256 * 1024 });
    const dir = path.join(work, 'sigterm');
    const cacheDir = path.join(dir, 'cache');
    const runDir = path.join(dir, 'run');
    mkdirSync(dir, { recursive: true });
    const run = startLauncher(
      ['--accel', 'tcg', '--net', 'none', '--vnc', 'none', '--web', 'none', '--console', 'none', '--cache-dir', cacheDir, '--run-dir', runDir, server.url('/slow.raw.xz')],
      { cwd: dir, env: { SNABBVM_PROGRESS_INTERVAL: '0.5' } },
    );
    try {
      await run.waitFor(/unpacking http:\/\/127\.0\.0\.1:\d+\/slow\.raw\.xz \(xz\) while it downloads/, 20_000);
      await run.waitFor(/downloading http:\/\/\S+: [\d.]+ (KiB|MiB) of/, 20_000);
      const children = childrenOf(run.child.pid!);
      assert.ok(children.some((c) => / xz /.test(` ${c} `)), `the decompressor runs during the download: ${children.join('; ')}`);
      assert.ok(existsSync(path.join(entryDirFor(cacheDir, server.url('/slow.raw.xz')), ENTRY.part)), 'the download is under way');
      const t0 = Date.now();
      run.child.kill('SIGTERM');
      const { code } = await run.exited;
      const took = Date.now() - t0;
      assert.ok(took < 5000, `exited ${took} ms after SIGTERM`);
      assert.equal(code, 1, run.stderr());
      assert.match(run.stderr(), /SIGTERM: .*\n(.*\n)*snabbvm: stopped before the VM started/);
      assert.doesNotMatch(run.stderr(), /error/);
      assert.deepEqual(filesUnder(cacheDir), [], 'no temp file left in the cache');
      assert.equal(existsSync(runDir), false, 'no run folder left');
      const left = children.filter((c) => existsSync(`/proc/${c.split(' ')[0]}`));
      assert.deepEqual(left, [], 'no process left');
    } finally {
      server.clearFaults();
    }
  });
});

/**
 * Writes an encrypted (LUKS1) image of `size` bytes the way `qemu-img create -f luks` lays it out, with no key
 * material. qemu-img itself is not used: it times its key derivation with the thread's CPU clock and fails at
 * random ("Unable to get accurate CPU usage") where that clock is coarse. `qemu-img info` reads only the header.
 */
function writeLuksImage(file: string, size: number): void {
  const header = Buffer.alloc(592);
  header.write('LUKS\xba\xbe', 0, 'latin1');
  header.writeUInt16BE(1, 6); // version
  header.write('aes', 8);
  header.write('xts-plain64', 40);
  header.write('sha256', 72);
  const payloadSector = 4040;
  header.writeUInt32BE(payloadSector, 104);
  header.writeUInt32BE(64, 108); // master key bytes: aes-256 in xts mode
  header.writeUInt32BE(1000, 164); // master key digest iterations
  header.write('72498df4-b260-4825-9fdf-fb7f2c86a6a4', 168);
  for (let slot = 0; slot < 8; slot++) {
    const at = 208 + slot * 48;
    header.writeUInt32BE(0x0000dead, at); // disabled
    header.writeUInt32BE(8 + slot * 504, at + 40); // key material offset, in sectors
    header.writeUInt32BE(4000, at + 44); // anti-forensic stripes
  }
  writeFileSync(file, header);
  truncateSync(file, payloadSector * 512 + size);
}

describe('bad input through the launcher: one line, exit 3, no temp file in the cache', () => {
  const dir = path.join(work, 'bad');
  mkdirSync(dir, { recursive: true });
  const cacheDir = path.join(dir, 'cache');
  const common = ['--accel', 'tcg', '--net', 'none', '--vnc', 'none', '--web', 'none', '--console', 'none', '--cache-dir', cacheDir];
  const env = { SNABBVM_HTTP_STALL_TIMEOUT: '30', SNABBVM_HTTP_ATTEMPTS: '2', SNABBVM_HTTP_RETRY_DELAY: '0.1' };

  const cases: [string, () => string[], RegExp, Record<string, string>?][] = [
    ['a malformed URL', () => ['http://[oops/disk.qcow2'], /image URL 'http:\/\/\[oops\/disk\.qcow2' is malformed/],
    ['an unknown scheme', () => ['ftp://example.com/disk.qcow2'], /image URL scheme 'ftp' is not supported/],
    ['a missing file', () => ['missing.qcow2'], /image .*missing\.qcow2 does not exist/],
    ['a disk-size shrink', () => ['--disk-size', '10M', smallQcow2], /--disk-size 10M is smaller than the image's 24M; disks only grow/],
    [
      'an unsupported format',
      () => {
        const luks = path.join(dir, 'secret.img');
        writeLuksImage(luks, 16 << 20);
        return [luks];
      },
      /image .*secret\.img has format 'luks', which snabbvm cannot boot/,
    ],
    [
      'a zip archive',
      () => {
        writeFileSync(path.join(dir, 'disk.zip'), Buffer.concat([Buffer.from('PK\x03\x04', 'latin1'), Buffer.alloc(8192, 1)]));
        return ['disk.zip'];
      },
      /disk\.zip is not a disk image: it is a zip archive/,
    ],
    ['a 404', () => [server.url('/nothing-here.qcow2')], /^snabbvm: error: download of http:\/\/127\.0\.0\.1:\d+\/nothing-here\.qcow2 failed: HTTP 404 Not Found$/],
    [
      'a stalled server (timeout)',
      () => {
        server.serve('/stall.qcow2', smallQcow2);
        server.fault('/stall.qcow2', { stallAfterBytes: 0 });
        return [server.url('/stall.qcow2')];
      },
      /no data from 127\.0\.0\.1:\d+ for 1 s \(http:\/\/127\.0\.0\.1:\d+\/stall\.qcow2\)/,
      { SNABBVM_HTTP_STALL_TIMEOUT: '1' },
    ],
    ['a wrong digest', () => ['--sha256', '00'.repeat(32), server.url('/small.qcow2')], /the SHA-256 of .* is [0-9a-f]{64}, not 0000.* nothing was kept/],
    ['a compressed file that is cut short', () => {
      execFileSync('bash', ['-c', `gzip -c ${smallRaw} | head -c 100000 > ${dir}/cut.img.gz`]);
      return ['cut.img.gz'];
    }, /image .*cut\.img\.gz cannot be unpacked as gzip: .*is the file complete\?/],
  ];
  for (const [what, args, message, extraEnv] of cases) {
    test(what, { timeout: 120_000 }, async () => {
      const runDir = path.join(dir, 'run');
      const r = await runLauncher([...common, '--run-dir', runDir, ...args()], { cwd: dir, env: { ...env, ...extraEnv } });
      const lines = r.stderr.trim().split('\n').filter((l) => !/^snabbvm: (warning: )?(?!error)/.test(l));
      assert.equal(r.code, 3, r.stderr);
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0]!, /^snabbvm: error: /);
      assert.match(lines[0]!, message);
      assert.doesNotMatch(r.stderr, /\s+at .*\.js:\d+/, 'no stack trace');
      assert.equal(existsSync(runDir), false, 'no run folder left');
      assert.deepEqual(filesUnder(cacheDir), [], 'nothing left in the cache');
    });
  }

  test('TLS is always verified (even with NODE_TLS_REJECT_UNAUTHORIZED=0); an https → http redirect is refused', async () => {
    const key = path.join(dir, 'tls.key');
    const cert = path.join(dir, 'tls.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const https = await import('node:https');
    const tls = https.createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (req, res) => {
      res.writeHead(302, { location: server.url('/small.qcow2') });
      res.end();
    });
    await new Promise<void>((r) => tls.listen(0, '127.0.0.1', r));
    const url = `https://127.0.0.1:${(tls.address() as { port: number }).port}/disk.qcow2`;
    try {
      const untrusted = await runLauncher([...common, '--run-dir', path.join(dir, 'run'), url], { cwd: dir, env: { ...env, NODE_TLS_REJECT_UNAUTHORIZED: '0' } });
      assert.equal(untrusted.code, 3, untrusted.stderr);
      assert.match(untrusted.stderr, /^snabbvm: error: https:\/\/127\.0\.0\.1:\d+\/disk\.qcow2: TLS certificate not trusted \(DEPTH_ZERO_SELF_SIGNED_CERT\); snabbvm always verifies certificates: add your CA with NODE_EXTRA_CA_CERTS=FILE$/m);
      // trusted through NODE_EXTRA_CA_CERTS, the redirect to plain http is refused
      const downgrade = await runLauncher([...common, '--run-dir', path.join(dir, 'run'), url], { cwd: dir, env: { ...env, NODE_EXTRA_CA_CERTS: cert } });
      assert.equal(downgrade.code, 3, downgrade.stderr);
      assert.match(downgrade.stderr, /redirects from https to plain http \(http:\/\/127\.0\.0\.1:\d+\/small\.qcow2\); snabbvm does not downgrade/);
      assert.deepEqual(filesUnder(cacheDir), []);
    } finally {
      tls.close();
    }
  });

  test('without a terminal, progress is a plain line every interval, with bytes, rate and ETA', async () => {
    server.fault('/small.qcow2', { bytesPerSecond: 4 * 2 ** 20 });
    const r = await runLauncher([...common, '--run-dir', path.join(dir, 'run'), '--sha256', '11'.repeat(32), server.url('/small.qcow2')], {
      cwd: dir,
      env: { SNABBVM_PROGRESS_INTERVAL: '0.5' },
    });
    server.clearFaults();
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /^snabbvm: downloading http:\/\/127\.0\.0\.1:\d+\/small\.qcow2: [\d.]+ MiB of 8\.4 MiB \(\d+%\), [\d.]+ MiB\/s, ETA \d+ s$/m);
    assert.doesNotMatch(r.stderr, /\x1b\[/, 'no terminal escapes');
  });

  test('an unreadable file (as an unprivileged user)', { skip: whyNobodyCannotRunTheLauncher() }, async () => {
    const file = path.join(dir, 'private.qcow2');
    cpSync(smallQcow2, file);
    chmodSync(file, 0o600);
    chmodSync(dir, 0o755);
    const child = spawn(process.execPath, [launcherPath, ...common, '--run-dir', path.join(tmpdir(), 'snabbvm-nobody-run'), file], { uid: 65534, gid: 65534, cwd: '/', stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (b) => (err += b));
    const code = await new Promise((r) => child.on('exit', r));
    assert.equal(code, 3, err);
    assert.equal(err.trim().split('\n').length, 1, err);
    assert.match(err, /^snabbvm: error: image .*private\.qcow2 cannot be read \(EACCES\); check its permissions$/m);
  });
});

/** The unreadable-file test runs the launcher as nobody: it needs root, and a checkout nobody can read. */
function whyNobodyCannotRunTheLauncher(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root to switch to nobody';
  const r = spawnSync(process.execPath, [launcherPath, '--version'], { uid: 65534, gid: 65534, cwd: '/' });
  if (r.status !== 0) return `the user nobody cannot run ${launcherPath}: this checkout is in a folder only its owner can enter (mktemp -d makes such folders)`;
  return undefined;
}
