import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';
import { startSerialHub, type SerialHub } from '../console/serial-hub.js';
import type { VmStatus } from '../console/vm-status.js';
import { ExitCode, UserError } from '../errors.js';
import type { QmpClient } from '../qemu/qmp-client.js';
import { resolveAsset } from './web-assets.js';
import { listenWebConsole, VNC_HIGH_WATER, type WebConsole } from './web-server.js';

// The server with what it drives standing in: a real serial hub on a socket that plays the guest, a unix socket
// server that plays QEMU's VNC display for the web console, and a QMP that records commands. No password (the
// default) for most; a second server with a password for the login, guessing and logout tests. The whole path
// with a real VM and browser runs in test/web-console.test.ts.

const dir = mkdtempSync(path.join(tmpdir(), 'snabbvm-web-'));
let guest: net.Socket | undefined;
const guestReceived: Buffer[] = [];
const qmpCalls: { command: string; args?: Record<string, unknown> }[] = [];
let hub: SerialHub;
let serial: net.Server;
let qemuVnc: net.Server;
/** what the stand-in QEMU VNC does with a connection; by default greets and echoes */
let vncBehaviour: (s: net.Socket) => void;
const greetAndEcho = (s: net.Socket) => {
  s.write('RFB 003.008\n');
  s.on('data', (d: Buffer) => s.write(Buffer.concat([Buffer.from('echo:'), d])));
};
const vncSocketPath = path.join(dir, 'vnc-web.sock');
let web: WebConsole;
let base: string;

before(async () => {
  serial = net.createServer((s) => {
    guest = s;
    s.on('data', (d: Buffer) => guestReceived.push(d));
  });
  serial.listen(path.join(dir, 'serial.sock'));
  await once(serial, 'listening');
  hub = await startSerialHub(path.join(dir, 'serial.sock'), path.join(dir, 'console.sock'));
  await sleep(50);
  guest!.write('earlier boot output\r\n');

  vncBehaviour = greetAndEcho;
  qemuVnc = net.createServer((s) => {
    s.on('error', () => {});
    vncBehaviour(s);
  });
  qemuVnc.listen(vncSocketPath);
  await once(qemuVnc, 'listening');

  web = await listenWebConsole({ listen: '127.0.0.1', port: 0 });
  base = web.url.replace(/\/$/, '');
});
after(async () => {
  await web.stop();
  await hub.stop();
  qemuVnc.close();
  guest?.destroy();
  serial.close();
  rmSync(dir, { recursive: true, force: true });
});

function serve() {
  const qmp = { execute: async (command: string, args?: Record<string, unknown>) => void qmpCalls.push(args ? { command, args } : { command }) };
  const status = async () => ({ name: 'vm1', state: 'running', addresses: [], ports: [] }) as unknown as VmStatus;
  web.serve({ hub, status, qmp: qmp as unknown as QmpClient, vncSocket: vncSocketPath });
}

/** connects and collects what arrives */
async function connect(p: string) {
  const ws = new WebSocket(base.replace('http', 'ws') + p, { headers: { origin: base } });
  const messages: Buffer[] = [];
  ws.on('message', (d: Buffer) => messages.push(d));
  await once(ws, 'open');
  return { ws, text: () => Buffer.concat(messages).toString() };
}

async function eventually(check: () => boolean, what: string) {
  for (let i = 0; i < 100 && !check(); i++) await sleep(20);
  assert.ok(check(), what);
}

test('before QEMU runs, the page loads but its live parts answer 503', async () => {
  assert.equal((await fetch(`${base}/`)).status, 200);
  assert.equal((await fetch(`${base}/api/status`)).status, 503);
  const ws = new WebSocket(`${base.replace('http', 'ws')}/ws/serial`);
  const [, res] = (await once(ws, 'unexpected-response')) as [unknown, { statusCode: number }];
  assert.equal(res.statusCode, 503);
  serve();
});

test('the page, its script and the libraries it imports are served; nothing outside them is', async () => {
  const page = await (await fetch(`${base}/`)).text();
  assert.match(page, /<script type="module" src="\/app.js">/);
  const script = await (await fetch(`${base}/app.js`)).text();
  for (const [, imported] of script.matchAll(/^import .* from '([^']+)';$/gm)) {
    const res = await fetch(base + imported!);
    assert.equal(res.status, 200, imported);
    assert.match(res.headers.get('content-type')!, /javascript/);
  }
  assert.equal((await fetch(`${base}/vendor/xterm/css/xterm.css`)).status, 200);
  assert.match((await fetch(`${base}/`)).headers.get('content-security-policy')!, /default-src 'self'/);
  for (const p of ['/%2e%2e/package.json', '/vendor/novnc/package.json', '/vendor/novnc/../../package.json', '/vendor/xterm/lib/xterm.js.map', '/nope.html']) {
    assert.equal((await fetch(base + p)).status, 404, p);
  }
});

test('without a password there is nothing to log in to', async () => {
  const res = await fetch(`${base}/login`, { redirect: 'manual' });
  assert.equal(res.status, 303);
  assert.equal(res.headers.get('location'), '/');
});

test('status is the launcher status, plus whether there is a screen', async () => {
  const status = (await (await fetch(`${base}/api/status`)).json()) as { name: string; state: string; screen: boolean };
  assert.deepEqual([status.name, status.state, status.screen], ['vm1', 'running', true]);
});

test('the serial websocket replays recent output, streams new output, and types into the guest', async () => {
  const { ws, text } = await connect('/ws/serial');
  await eventually(() => text().includes('earlier boot output'), 'the replay of recent output');
  guest!.write('login: ');
  await eventually(() => text().includes('login: '), 'live output');
  ws.send('root\r');
  await eventually(() => Buffer.concat(guestReceived).toString().includes('root\r'), 'keystrokes reach the guest');
  ws.close();
});

test("the VNC websocket relays QEMU's VNC display on its unix socket both ways", async () => {
  const { ws, text } = await connect('/ws/vnc');
  assert.equal(ws.protocol, '', 'no subprotocol asked, none chosen');
  await eventually(() => text().startsWith('RFB 003.008'), "QEMU's greeting");
  ws.send(Buffer.from('RFB 003.008\n'));
  await eventually(() => text().includes('echo:RFB 003.008'), 'the client side reaches QEMU');
  ws.close();
});

test('power buttons: ACPI shutdown, reset and Ctrl-Alt-Del go to QMP; only by POST from our own origin', async () => {
  for (const action of ['shutdown', 'reset', 'ctrl-alt-del']) {
    assert.equal((await fetch(`${base}/api/power/${action}`, { method: 'POST', headers: { origin: base } })).status, 200, action);
  }
  assert.deepEqual(qmpCalls.map((c) => c.command), ['system_powerdown', 'system_reset', 'send-key']);
  assert.deepEqual(qmpCalls[2]!.args, { keys: ['ctrl', 'alt', 'delete'].map((data) => ({ type: 'qcode', data })) });
  assert.equal((await fetch(`${base}/api/power/shutdown`)).status, 405);
  for (const action of ['explode', 'constructor']) assert.equal((await fetch(`${base}/api/power/${action}`, { method: 'POST' })).status, 404, action);
  assert.equal((await fetch(`${base}/api/power/shutdown`, { method: 'POST', headers: { origin: 'http://evil.example' } })).status, 403);
  assert.equal(qmpCalls.length, 3);
});

test('a port in use is a host problem (exit 4) that names the fix', async () => {
  const port = Number(new URL(base).port);
  await assert.rejects(listenWebConsole({ listen: '127.0.0.1', port }), (err: UserError) => {
    assert.equal(err.exitCode, ExitCode.HostNotReady);
    assert.match(err.message, new RegExp(`port ${port} on 127.0.0.1 is in use.*--web PORT, or --web none`));
    return true;
  });
});

/** a request with headers fetch will not set (Host): its status, headers and body */
function rawRequest(url: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}) {
  return new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
    const req = http.request(url, { method: options.method ?? 'GET', headers: options.headers ?? {} }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += String(d)));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

/** how the server answers a websocket upgrade: 101 when it accepts, else the status it refused with, and its body */
function upgradeAnswer(url: string, headers: Record<string, string>) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.on('open', () => {
      ws.terminate();
      resolve({ status: 101, body: '' });
    });
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += String(d)));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, body });
        ws.terminate();
      });
    });
    ws.on('error', reject);
  });
}

async function waitFor(check: () => boolean, what: string, ms: number) {
  const until = Date.now() + ms;
  while (!check() && Date.now() < until) await sleep(20);
  assert.ok(check(), what);
}

test('DNS rebinding: a Host name the server does not know is refused with 421 before anything runs, requests and websockets alike', async () => {
  const port = new URL(base).port;
  // a page on evil.example whose name now points here: the browser sends its own name as Host and Origin
  const rebound = { host: `evil.example:${port}`, origin: `http://evil.example:${port}` };
  const calls = qmpCalls.length;
  const reset = await rawRequest(`${base}/api/power/reset`, { method: 'POST', headers: rebound });
  assert.equal(reset.status, 421);
  assert.match(reset.body, /does not answer to the name 'evil\.example:\d+'.*--web-host NAME/);
  assert.equal(qmpCalls.length, calls, 'the VM was not reset');
  for (const p of ['/', '/app.js', '/api/status', '/login']) assert.equal((await rawRequest(base + p, { headers: rebound })).status, 421, p);
  for (const p of ['/ws/serial', '/ws/vnc']) {
    const answer = await upgradeAnswer(base.replace('http', 'ws') + p, rebound);
    assert.equal(answer.status, 421, p);
    assert.match(answer.body, /does not answer to the name/);
  }
  assert.equal(Buffer.concat(guestReceived).toString().includes('rebound'), false);
  // the names it knows still work: localhost, addresses
  for (const host of [`localhost:${port}`, `127.0.0.1:${port}`]) {
    assert.equal((await rawRequest(`${base}/api/status`, { headers: { host } })).status, 200, host);
    assert.equal((await upgradeAnswer(`${base.replace('http', 'ws')}/ws/serial`, { host, origin: `http://${host}` })).status, 101, host);
  }
});

test('--web-host names a reverse proxy: its name is served, with its Origin even when it rewrites Host; others are still refused', async () => {
  const proxied = await listenWebConsole({ listen: '127.0.0.1', port: 0, hosts: ['console.example.com'] });
  try {
    const url = proxied.url.replace(/\/$/, '');
    assert.equal((await rawRequest(`${url}/`, { headers: { host: 'console.example.com' } })).status, 200);
    assert.equal((await rawRequest(`${url}/`, { headers: { host: 'other.example.com' } })).status, 421);
    const rewritten = { host: new URL(url).host, origin: 'https://console.example.com' };
    assert.equal((await rawRequest(`${url}/api/power/reset`, { method: 'POST', headers: rewritten })).status, 503, 'past the Host and Origin checks (no VM yet)');
  } finally {
    await proxied.stop();
  }
});

describe('with a password', () => {
  const limit = { burst: 3, refillMs: 100, maxWaiting: 4 };
  let locked: WebConsole;
  let url: string;
  before(async () => {
    locked = await listenWebConsole({ listen: '127.0.0.1', port: 0, password: 's3cret', name: 'vm1', guessLimit: limit });
    url = locked.url.replace(/\/$/, '');
  });
  after(() => locked.stop());

  test('DNS rebinding is refused with a password too, even with the right one', async () => {
    const port = new URL(url).port;
    const rebound = { host: `evil.example:${port}`, origin: `http://evil.example:${port}`, authorization: 'Bearer s3cret' };
    assert.equal((await rawRequest(`${url}/api/power/reset`, { method: 'POST', headers: rebound })).status, 421);
    assert.equal((await upgradeAnswer(`${url.replace('http', 'ws')}/ws/serial`, rebound)).status, 421);
  });

  test('guesses from many connections, by the form and by bearer token, share one limit; the right password still gets in', async (t) => {
    // 200 at once, as a script would
    const burstStart = Date.now();
    const burst = await Promise.all(Array.from({ length: 200 }, (_, i) => fetch(`${url}/login`, { method: 'POST', body: new URLSearchParams({ password: `guess${i}` }) })));
    const burstMs = Date.now() - burstStart;
    const burstChecked = burst.filter((r) => r.status === 401).length;
    assert.equal(burstChecked + burst.filter((r) => r.status === 429).length, 200, 'each guess is checked (401) or refused unchecked (429)');
    assert.ok(burstChecked <= limit.burst + limit.maxWaiting + Math.ceil(burstMs / limit.refillMs), `${burstChecked} of 200 parallel guesses checked in ${burstMs} ms`);
    // then 10 clients guessing as fast as answers come for a second, half by the form, half by bearer token
    await sleep(limit.burst * limit.refillMs); // the bucket full again
    let guess = 0;
    const counts = { checked: 0, refused: 0 };
    const started = Date.now();
    await Promise.all(Array.from({ length: 10 }, async (_, client) => {
      while (Date.now() - started < 1000) {
        const password = `guess-${guess++}`;
        const res = client % 2 === 0
          ? await fetch(`${url}/api/status`, { headers: { authorization: `Bearer ${password}` } })
          : await fetch(`${url}/login`, { method: 'POST', body: new URLSearchParams({ password }) });
        await res.arrayBuffer();
        if (res.status === 401) counts.checked++;
        else if (res.status === 429) counts.refused++;
        else assert.fail(`a wrong password got ${res.status}`);
      }
    }));
    const elapsed = Date.now() - started;
    const bound = limit.burst + Math.ceil(elapsed / limit.refillMs) + 1;
    t.diagnostic(`parallel: ${burstChecked} of 200 checked in ${burstMs} ms; sustained: ${counts.checked + counts.refused} guesses in ${elapsed} ms, ${counts.checked} checked (bound ${bound}), ${counts.refused} refused unchecked`);
    assert.ok(counts.checked <= bound, `${counts.checked} guesses checked in ${elapsed} ms; the limit allows ${bound}`);
    // the right password: refused unchecked at worst while guesses wait, then in
    let status = 0;
    for (const until = Date.now() + 5000; status !== 200 && Date.now() < until; await sleep(50)) {
      status = (await fetch(`${url}/app.js`, { headers: { authorization: 'Bearer s3cret' } })).status;
    }
    assert.equal(status, 200, 'the right bearer password gets in');
    const login = await fetch(`${url}/login`, { method: 'POST', body: new URLSearchParams({ password: 's3cret' }), redirect: 'manual' });
    assert.equal(login.status, 303, 'the right password in the form logs in');
  });

  test('each login gets its own session cookie, named for the VM and port, which logout ends', async () => {
    const port = new URL(url).port;
    const logIn = async () => {
      const res = await fetch(`${url}/login`, { method: 'POST', body: new URLSearchParams({ password: 's3cret' }), redirect: 'manual' });
      assert.equal(res.status, 303);
      const setCookie = res.headers.get('set-cookie')!;
      assert.match(setCookie, new RegExp(`^snabbvm_vm1_${port}=[\\w-]+; Path=/; Max-Age=43200; HttpOnly; SameSite=Strict$`));
      return setCookie.split(';')[0]!;
    };
    const [first, second] = [await logIn(), await logIn()];
    assert.notEqual(first, second);
    assert.equal((await fetch(`${url}/app.js`, { headers: { cookie: first } })).status, 200);
    assert.equal((await fetch(`${url}/logout`, { headers: { cookie: first } })).status, 405, 'GET does not log out');
    assert.equal((await fetch(`${url}/logout`, { method: 'POST', headers: { cookie: first, origin: 'http://evil.example' } })).status, 403);
    const out = await fetch(`${url}/logout`, { method: 'POST', headers: { cookie: first, origin: url }, redirect: 'manual' });
    assert.equal(out.status, 303);
    assert.match(out.headers.get('set-cookie')!, new RegExp(`^snabbvm_vm1_${port}=; Path=/; Max-Age=0`));
    assert.equal((await fetch(`${url}/app.js`, { headers: { cookie: first } })).status, 401, 'logged out');
    assert.equal((await fetch(`${url}/app.js`, { headers: { cookie: second } })).status, 200, 'the other login is still in');
  });
});

test('a file that fails to read ends that response only; the launcher goes on serving', async () => {
  const notAFile = path.join(dir, 'unreadable.html');
  mkdirSync(notAFile); // stat works, reading fails (EISDIR), as for a file removed or unreadable after the stat
  const server = await listenWebConsole({ listen: '127.0.0.1', port: 0, resolveAsset: (p) => (p === '/broken.html' ? { path: notAFile, type: 'text/html' } : resolveAsset(p)) });
  try {
    const url = server.url.replace(/\/$/, '');
    await assert.rejects(fetch(`${url}/broken.html`).then((r) => r.text()), 'the response is cut');
    assert.equal((await fetch(`${url}/`)).status, 200, 'still serving');
  } finally {
    await server.stop();
  }
});

test('the VNC relay holds QEMU back while the browser reads nothing, then delivers every byte', async (t) => {
  const total = 48 * 1024 * 1024;
  let written = 0;
  vncBehaviour = (s) => {
    const chunk = Buffer.alloc(64 * 1024, 7);
    const pump = () => {
      while (written < total) {
        written += chunk.length;
        if (!s.write(chunk)) return void s.once('drain', pump);
      }
    };
    pump();
  };
  try {
    const ws = new WebSocket(`${base.replace('http', 'ws')}/ws/vnc`, { headers: { origin: base } });
    let received = 0;
    ws.on('message', (d: Buffer) => (received += d.length));
    await once(ws, 'open');
    ws.pause();
    await sleep(1500);
    const whilePaused = written;
    t.diagnostic(`${(whilePaused / 2 ** 20).toFixed(1)} MiB of ${total / 2 ** 20} left QEMU while the browser read nothing (relay high water ${VNC_HIGH_WATER / 2 ** 20} MiB)`);
    assert.ok(whilePaused < total / 2, `${whilePaused} bytes left QEMU while the browser read nothing: not held back`);
    ws.resume();
    await waitFor(() => received === total, `all ${total} bytes arrive (got ${received})`, 30_000);
    ws.close();
  } finally {
    vncBehaviour = greetAndEcho;
  }
});

test('the VNC relay holds the browser back while QEMU reads nothing, then delivers every byte', async (t) => {
  const total = 48 * 1024 * 1024;
  let qemuSide: net.Socket | undefined;
  vncBehaviour = (s) => {
    qemuSide = s;
    s.pause();
  };
  try {
    const ws = new WebSocket(`${base.replace('http', 'ws')}/ws/vnc`, { headers: { origin: base } });
    await once(ws, 'open');
    await waitFor(() => qemuSide !== undefined, 'the relay connects to QEMU', 5000);
    const chunk = Buffer.alloc(64 * 1024, 9);
    for (let sent = 0; sent < total; sent += chunk.length) ws.send(chunk);
    await sleep(1500);
    const left = total - ws.bufferedAmount;
    t.diagnostic(`${(left / 2 ** 20).toFixed(1)} MiB of ${total / 2 ** 20} left the browser while QEMU read nothing`);
    assert.ok(left < total / 2, `${left} bytes left the browser while QEMU read nothing: not held back`);
    let received = 0;
    qemuSide!.on('data', (d: Buffer) => (received += d.length));
    qemuSide!.resume();
    await waitFor(() => received === total, `all ${total} bytes arrive (got ${received})`, 30_000);
    ws.close();
  } finally {
    vncBehaviour = greetAndEcho;
  }
});
