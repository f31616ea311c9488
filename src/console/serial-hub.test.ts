import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startSerialHub } from './serial-hub.js';

const dirs: string[] = [];
const tempDir = () => {
  dirs.push(mkdtempSync(path.join(tmpdir(), 'snabbvm-hub-')));
  return dirs.at(-1)!;
};
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** Stands in for QEMU's serial chardev: a unix socket server that takes one client (the hub). */
async function fakeSerial(socketPath: string) {
  const received: Buffer[] = [];
  let guest: net.Socket | undefined;
  const server = net.createServer((s) => {
    guest = s;
    s.on('data', (d: Buffer) => received.push(d));
  });
  server.listen(socketPath);
  await once(server, 'listening');
  return {
    say: (text: string) => guest!.write(text),
    received: () => Buffer.concat(received).toString(),
    close: () => {
      guest?.destroy();
      server.close();
    },
  };
}

async function client(socketPath: string) {
  const s = net.createConnection(socketPath);
  await once(s, 'connect');
  let text = '';
  s.on('data', (d: Buffer) => (text += d.toString()));
  const closed = once(s, 'close');
  return { s, text: () => text, closed };
}

async function until(what: () => boolean, label: string) {
  for (let i = 0; i < 100 && !what(); i++) await sleep(20);
  assert.ok(what(), label);
}

test('the hub shares one serial connection: output to all, input from any, recent output replayed to newcomers', async () => {
  const dir = tempDir();
  const serial = await fakeSerial(path.join(dir, 'serial.sock'));
  const hub = await startSerialHub(path.join(dir, 'serial.sock'), path.join(dir, 'console.sock'));
  const seen: string[] = [];
  hub.subscribe((chunk) => seen.push(chunk.toString()));

  serial.say('booting\r\nvm1 login: ');
  await until(() => seen.join('') === 'booting\r\nvm1 login: ', 'in-process subscribers get the output');
  const a = await client(hub.socketPath);
  const b = await client(hub.socketPath);
  await until(() => a.text() === 'booting\r\nvm1 login: ' && b.text() === a.text(), 'a new client first sees the recent output');
  await until(() => hub.clientCount === 2, 'two clients');

  serial.say('more');
  await until(() => a.text().endsWith('more') && b.text().endsWith('more'), 'both clients get new output');
  a.s.write('root\r');
  b.s.write('ls\r');
  hub.write('pwd\r');
  // (the order between clients is whichever arrives first)
  await until(() => serial.received().length === 12, 'input from every client reaches the guest');
  assert.deepEqual(serial.received().split('\r').sort(), ['', 'ls', 'pwd', 'root']);
  assert.equal(hub.recent().toString(), 'booting\r\nvm1 login: more');

  a.s.destroy();
  await until(() => hub.clientCount === 1, 'a client leaving does not disturb the others');

  serial.close(); // QEMU exits
  await hub.closed;
  await b.closed;
  assert.equal(existsSync(hub.socketPath), false, 'the hub socket is removed');
  await hub.stop(); // twice is fine
});

test('the hub gives up when QEMU never serves the serial socket', async () => {
  const dir = tempDir();
  await assert.rejects(startSerialHub(path.join(dir, 'missing.sock'), path.join(dir, 'console.sock'), 300), /cannot connect to QEMU's serial console/);
});
