/**
 * Downloads through a real proxy (tinyproxy, from Debian, on the loopback): http URLs through http_proxy, https
 * URLs through HTTPS_PROXY with CONNECT, NO_PROXY, the lower- and upper-case forms, and the proxy's credentials
 * sent as Proxy-Authorization and never shown. Nothing boots a VM.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { downloadOptions, resolveUrl } from '../src/image/resolve-base-image.js';
import { freePort } from './helpers/free-port.js';
import { runLauncher } from './helpers/launcher.js';
import { startHttpServer, type TestHttpServer } from './helpers/http-server.js';
import { waitUntil } from './helpers/wait-until.js';

const work = mkdtempSync(path.join(tmpdir(), 'snabbvm-proxy-'));
const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');
const common = ['--accel', 'tcg', '--net', 'none', '--vnc', 'none', '--web', 'none', '--console', 'none'];
const USER = 'alice';
const PASSWORD = 'pr0xy-s3cret';
const tinyproxyMissing = (() => {
  try {
    execFileSync('tinyproxy', ['-v'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'tinyproxy is not installed (scripts/install-test-deps.sh installs it)';
  }
})();

let server: TestHttpServer;
let tlsServer: https.Server;
let tlsRequests = 0;
let proxy: ChildProcess | undefined;
let proxyPort: number;
const proxyLog = path.join(work, 'tinyproxy.log');
const disk = path.join(work, 'disk.img');
const cert = path.join(work, 'tls.pem');

before(async () => {
  if (tinyproxyMissing) return;
  const bytes = randomBytes(2 << 20);
  bytes[510] = 0x55;
  bytes[511] = 0xaa;
  writeFileSync(disk, bytes);
  server = await startHttpServer();
  server.serve('/disk.img', disk);

  const key = path.join(work, 'tls.key');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  tlsServer = https.createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (_req, res) => {
    tlsRequests++;
    res.writeHead(200, { 'content-length': bytes.length });
    res.end(bytes);
  });
  await new Promise<void>((r) => tlsServer.listen(0, '127.0.0.1', r));

  proxyPort = await freePort(38120);
  const conf = path.join(work, 'tinyproxy.conf');
  // no ConnectPort line: CONNECT to any port (the test server's is random)
  writeFileSync(conf, [`Port ${proxyPort}`, 'Listen 127.0.0.1', 'Timeout 60', `LogFile "${proxyLog}"`, 'LogLevel Connect', 'MaxClients 20', 'Allow 127.0.0.1', `BasicAuth ${USER} ${PASSWORD}`, ''].join('\n'));
  proxy = spawn('tinyproxy', ['-d', '-c', conf], { stdio: 'ignore' });
  await waitUntil(() => new Promise<boolean>((resolve) => net.connect(proxyPort, '127.0.0.1').once('connect', function (this: net.Socket) {
    this.destroy();
    resolve(true);
  }).once('error', () => resolve(false))), 10_000, 'tinyproxy listening');
});
after(async () => {
  proxy?.kill();
  await server?.close();
  tlsServer?.close();
  rmSync(work, { recursive: true, force: true });
});

const proxyUrl = (password = PASSWORD) => `http://${USER}:${password}@127.0.0.1:${proxyPort}`;
const proxyLogText = () => (existsSync(proxyLog) ? readFileSync(proxyLog, 'utf8') : '');
let cacheCount = 0;
const newCache = () => path.join(work, `cache-${++cacheCount}`);

/** resolveUrl in a child process: NODE_EXTRA_CA_CERTS is read at start, and the proxy comes from its environment. */
async function resolveInChild(url: string, env: Record<string, string>): Promise<string> {
  const resolver = new URL('../src/image/resolve-base-image.js', import.meta.url).href;
  const script = `const m = await import(${JSON.stringify(resolver)}); console.log((await m.resolveUrl(process.argv[1], { cacheDir: process.argv[2] }, m.downloadOptions(process.env, true))).path);`;
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/_proxy$/i.test(k)));
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script, url, newCache()], { env: { ...clean, NODE_EXTRA_CA_CERTS: cert, ...env } });
  return stdout.trim();
}

describe('downloads through a proxy (tinyproxy)', { skip: tinyproxyMissing }, () => {
  test('an http URL through http_proxy and HTTP_PROXY: the request goes through the proxy, with Proxy-Authorization', { timeout: 60_000 }, async () => {
    for (const name of ['http_proxy', 'HTTP_PROXY']) {
      const base = await resolveUrl(server.url('/disk.img'), { cacheDir: newCache() }, downloadOptions({ [name]: proxyUrl() }, true));
      assert.equal(sha256(base.path), sha256(disk));
      const last = server.requests.at(-1)!;
      assert.match(String(last.headers.via), /tinyproxy/, `the server saw the proxy (Via), with ${name}`);
      assert.equal(last.headers['proxy-authorization'], undefined, 'the proxy kept its credentials');
    }
    assert.match(proxyLogText(), new RegExp(`Request \\(file descriptor \\d+\\): GET http://127\\.0\\.0\\.1:${server.port}/disk\\.img`));
  });

  test('an https URL through HTTPS_PROXY (CONNECT), and through https_proxy', { timeout: 60_000 }, async () => {
    const url = `https://127.0.0.1:${(tlsServer.address() as AddressInfo).port}/disk.img`;
    for (const name of ['HTTPS_PROXY', 'https_proxy']) {
      const before = tlsRequests;
      const file = await resolveInChild(url, { [name]: proxyUrl() });
      assert.equal(sha256(file), sha256(disk), name);
      assert.equal(tlsRequests, before + 1);
    }
    assert.match(proxyLogText(), new RegExp(`Request \\(file descriptor \\d+\\): CONNECT 127\\.0\\.0\\.1:${(tlsServer.address() as AddressInfo).port}`));
  });

  test('NO_PROXY and no_proxy: matching hosts are reached directly', { timeout: 60_000 }, async () => {
    for (const env of [{ http_proxy: proxyUrl(), NO_PROXY: 'example.com, 127.0.0.1' }, { http_proxy: proxyUrl(), no_proxy: `127.0.0.1:${server.port}` }, { http_proxy: proxyUrl(), no_proxy: '*' }]) {
      await resolveUrl(server.url('/disk.img'), { cacheDir: newCache() }, downloadOptions(env, true));
      assert.equal(server.requests.at(-1)!.headers.via, undefined, `direct with ${JSON.stringify(env)}`);
    }
    // a NO_PROXY for another port still goes through the proxy
    await resolveUrl(server.url('/disk.img'), { cacheDir: newCache() }, downloadOptions({ http_proxy: proxyUrl(), no_proxy: '127.0.0.1:1' }, true));
    assert.match(String(server.requests.at(-1)!.headers.via), /tinyproxy/);
  });

  test('wrong proxy credentials: one line, exit 3, the password never shown', { timeout: 60_000 }, async () => {
    const url = `https://127.0.0.1:${(tlsServer.address() as AddressInfo).port}/disk.img`;
    const r = await runLauncher([...common, '--cache-dir', newCache(), '--run-dir', path.join(work, 'run'), url], {
      env: { HTTPS_PROXY: proxyUrl('wr0ng-pass'), NODE_EXTRA_CA_CERTS: cert, SNABBVM_HTTP_ATTEMPTS: '1' },
    });
    assert.equal(r.code, 3, r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /^snabbvm: error: https:\/\/127\.0\.0\.1:\d+\/disk\.img: the proxy 127\.0\.0\.1:\d+ refused the tunnel to 127\.0\.0\.1:\d+: HTTP 40[17] .*check the user and password in HTTPS_PROXY$/m);
    assert.doesNotMatch(r.stderr, /wr0ng-pass/);
  });

  test('a proxy that cannot be reached, and a malformed proxy URL: one line, the password hidden', { timeout: 60_000 }, async () => {
    const unreachable = await runLauncher([...common, '--cache-dir', newCache(), '--run-dir', path.join(work, 'run'), server.url('/disk.img')], {
      env: { http_proxy: `http://${USER}:${PASSWORD}@127.0.0.1:1`, SNABBVM_HTTP_ATTEMPTS: '1' },
    });
    assert.equal(unreachable.code, 3, unreachable.stderr);
    assert.match(unreachable.stderr, /^snabbvm: error: http:\/\/127\.0\.0\.1:\d+\/disk\.img \(through the proxy 127\.0\.0\.1:1\): connection refused$/m);
    const malformed = await runLauncher([...common, '--cache-dir', newCache(), '--run-dir', path.join(work, 'run'), server.url('/disk.img')], {
      env: { HTTPS_PROXY: `https://${USER}:${PASSWORD}@127.0.0.1:${proxyPort}` },
    });
    assert.equal(malformed.code, 2, malformed.stderr);
    assert.equal(malformed.stderr.trim().split('\n').length, 1, malformed.stderr);
    assert.match(malformed.stderr, /^snabbvm: error: HTTPS_PROXY=https:\/\/alice:\*\*\*@127\.0\.0\.1:\d+ is not a proxy URL snabbvm can use/m);
    for (const r of [unreachable, malformed]) assert.doesNotMatch(r.stderr, new RegExp(PASSWORD));
  });
});
