import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ControlClient, controlRequest, NoLauncherError } from './control-client.js';
import { startControlServer } from './control-server.js';

const dirs: string[] = [];
const tempDir = () => {
  dirs.push(mkdtempSync(path.join(tmpdir(), 'snabbvm-control-')));
  return dirs.at(-1)!;
};
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

test('the control socket: JSON lines, answers in request order, errors as messages, owner-only', async () => {
  const dir = tempDir();
  const socket = path.join(dir, 'control.sock');
  const server = await startControlServer(socket, {
    status: () => ({ state: 'running' }),
    slow: async () => {
      await sleep(100);
      return 'slow';
    },
    fails: () => {
      throw new Error('QMP human-monitor-command: GenericError: no such thing');
    },
  });
  assert.equal(statSync(socket).mode & 0o777, 0o600);
  assert.deepEqual(await controlRequest(socket, { cmd: 'status' }), { state: 'running' });

  const client = await ControlClient.connect(socket);
  const answers = await Promise.all([client.request({ cmd: 'slow' }), client.request({ cmd: 'status' })]);
  assert.deepEqual(answers, ['slow', { state: 'running' }]);
  await assert.rejects(client.request({ cmd: 'fails' }), /GenericError: no such thing/);
  await assert.rejects(client.request({ cmd: 'frobnicate' }), /unknown command 'frobnicate'; known: status, slow, fails/);
  client.close();

  // not JSON: an error answer, and the connection still works
  const raw = net.createConnection(socket);
  await once(raw, 'connect');
  raw.write('nonsense\n');
  const [line] = (await once(raw, 'data')) as [Buffer];
  assert.deepEqual(JSON.parse(line.toString()), { ok: false, error: 'the request is not JSON' });
  raw.destroy();

  await server.stop();
  assert.equal(existsSync(socket), false);
  await assert.rejects(controlRequest(socket, { cmd: 'status' }), NoLauncherError);
});

test('stop() first sends an answer already under way (snabbvm stop waits for the VM to end)', async () => {
  const dir = tempDir();
  const socket = path.join(dir, 'control.sock');
  let vmEnded!: () => void;
  const ended = new Promise<void>((resolve) => (vmEnded = resolve));
  const server = await startControlServer(socket, {
    stop: async () => {
      await ended;
      return { stopped: true };
    },
  });
  const client = await ControlClient.connect(socket);
  const answer = client.request({ cmd: 'stop' });
  await sleep(50);
  vmEnded();
  await server.stop();
  assert.deepEqual(await answer, { stopped: true });
  await client.closed;
});
