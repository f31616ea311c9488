/**
 * The web console's screen against real QEMU, without booting a guest (`-machine none -S`: no lock needed): the VNC
 * options buildQemuArgv writes make QEMU serve its usual TCP display and a second display on a unix socket, and
 * the web console's relay reaches that one: the RFB greeting, and with --vnc-password the same VNC authentication.
 * Nothing of it listens on TCP but the display itself (in --net user the guest reaches the loopback).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket } from 'ws';
import type { SerialHub } from '../src/console/serial-hub.js';
import type { VmStatus } from '../src/console/vm-status.js';
import { runtimePaths } from '../src/paths.js';
import { buildQemuArgv } from '../src/qemu/build-qemu-argv.js';
import type { QmpClient } from '../src/qemu/qmp-client.js';
import { listenWebConsole } from '../src/web/web-server.js';
import { freeVncDisplay } from './helpers/free-port.js';

const skip = (() => {
  try {
    execFileSync('qemu-system-x86_64', ['--version'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)';
  }
})();
const work = mkdtempSync(path.join(tmpdir(), 'snabbvm-web-vnc-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** the value that follows each occurrence of a flag */
const valuesOf = (argv: string[], flag: string) => argv.flatMap((a, i) => (a === flag ? [argv[i + 1]!] : []));

/** QEMU with only the display options of the launcher's argv, paused before any CPU runs */
async function startQemuDisplays(display: number, passwordFile: string | undefined) {
  const paths = runtimePaths(work);
  const argv = buildQemuArgv({
    binary: 'qemu-system-x86_64', name: 'web-vnc', accel: 'tcg', cpus: 1, memoryMiB: 64, memory: { kind: 'anonymous' }, disk: paths.overlay, nics: [], paths, vhostUserWithoutMsix: false,
    vnc: { listen: '127.0.0.1', display, webSocket: paths.vncWebSocket, ...(passwordFile ? { passwordFile } : {}) },
  });
  const displayArgs = [...valuesOf(argv, '-object').flatMap((o) => ['-object', o]), ...valuesOf(argv, '-vnc').flatMap((v) => ['-vnc', v])];
  const qemu = spawn('qemu-system-x86_64', ['-machine', 'none', '-display', 'none', '-S', ...displayArgs], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  qemu.stderr.on('data', (d: Buffer) => (stderr += String(d)));
  for (let i = 0; i < 100 && !existsSync(paths.vncWebSocket) && qemu.exitCode === null; i++) await sleep(50);
  assert.ok(existsSync(paths.vncWebSocket), `QEMU made ${paths.vncWebSocket}: ${stderr}`);
  return {
    socket: paths.vncWebSocket,
    pid: qemu.pid!,
    displayArgs,
    async stop() {
      qemu.kill();
      if (qemu.exitCode === null) await once(qemu, 'exit');
      rmSync(paths.vncWebSocket, { force: true });
    },
  };
}

/** through the web console: QEMU's greeting, then (after ours) the security types it offers */
async function handshakeThroughRelay(vncSocket: string): Promise<{ greeting: string; securityTypes: number[] }> {
  const web = await listenWebConsole({ listen: '127.0.0.1', port: 0 });
  const stub = { hub: {} as SerialHub, status: async () => ({}) as VmStatus, qmp: {} as QmpClient };
  web.serve({ ...stub, vncSocket });
  try {
    const ws = new WebSocket(`${web.url.replace('http', 'ws')}ws/vnc`, { headers: { origin: web.url.replace(/\/$/, '') } });
    const received: Buffer[] = [];
    ws.on('message', (d: Buffer) => received.push(d));
    await once(ws, 'open');
    const all = () => Buffer.concat(received);
    for (let i = 0; i < 100 && all().length < 12; i++) await sleep(20);
    ws.send(Buffer.from('RFB 003.008\n'));
    for (let i = 0; i < 100 && all().length < 13; i++) await sleep(20);
    ws.close();
    const bytes = all();
    const count = bytes[12] ?? 0;
    return { greeting: bytes.subarray(0, 12).toString(), securityTypes: [...bytes.subarray(13, 13 + count)] };
  } finally {
    await web.stop();
  }
}

describe("the web console's VNC display on a unix socket, with real QEMU", { skip }, () => {
  test('no password: QEMU accepts the two displays, the relay gets its greeting, nothing listens on TCP for it', async () => {
    const display = await freeVncDisplay();
    const qemu = await startQemuDisplays(display, undefined);
    try {
      assert.equal(qemu.displayArgs.some((a) => /websocket/.test(a)), false);
      const { greeting, securityTypes } = await handshakeThroughRelay(qemu.socket);
      assert.equal(greeting, 'RFB 003.008\n');
      assert.deepEqual(securityTypes, [1], 'no authentication');
      const qemuPorts = execFileSync('ss', ['-Hltnp'], { encoding: 'utf8' })
        .split('\n')
        .filter((line) => line.includes(`pid=${qemu.pid},`))
        .map((line) => line.split(/\s+/)[3]);
      assert.deepEqual(qemuPorts, [`127.0.0.1:${5900 + display}`], "QEMU's only TCP port is the usual display: no websocket VNC");
    } finally {
      await qemu.stop();
    }
  });

  test('--vnc-password: the display for the web console asks for it too', async () => {
    const passwordFile = path.join(work, 'vnc-password');
    writeFileSync(passwordFile, 'pw12', { mode: 0o600 });
    const qemu = await startQemuDisplays(await freeVncDisplay(), passwordFile);
    try {
      const { greeting, securityTypes } = await handshakeThroughRelay(qemu.socket);
      assert.equal(greeting, 'RFB 003.008\n');
      assert.deepEqual(securityTypes, [2], 'VNC authentication only');
    } finally {
      await qemu.stop();
    }
  });
});
