import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket, WebSocketServer } from 'ws';
import { startSerialHub, type SerialHub } from '../console/serial-hub.js';
import type { VmStatus } from '../console/vm-status.js';
import { ExitCode, UserError } from '../errors.js';
import type { QmpClient } from '../qemu/qmp-client.js';
import { listenWebConsole, type WebConsole } from './web-server.js';

// The server with what it drives standing in: a real serial hub on a socket that plays the guest, a websocket
// server that plays QEMU's websocket VNC, and a QMP that records commands. No password (the default); the
// password path runs against a real VM in test/web-console.test.ts.

const dir = mkdtempSync(path.join(tmpdir(), 'snabbvm-web-'));
let guest: net.Socket | undefined;
const guestReceived: Buffer[] = [];
const qmpCalls: { command: string; args?: Record<string, unknown> }[] = [];
let hub: SerialHub;
let serial: net.Server;
let qemuVnc: WebSocketServer;
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

  qemuVnc = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: (p) => (p.has('binary') ? 'binary' : false) });
  qemuVnc.on('connection', (s) => {
    s.send(Buffer.from('RFB 003.008\n'));
    s.on('message', (d: Buffer) => s.send(Buffer.concat([Buffer.from('echo:'), d])));
  });
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
  web.serve({ hub, status, qmp: qmp as unknown as QmpClient, vncWebsocket: `127.0.0.1:${(qemuVnc.address() as net.AddressInfo).port}` });
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

test("the VNC websocket relays QEMU's websocket VNC both ways", async () => {
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
