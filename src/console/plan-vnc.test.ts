import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { parseRunArgs } from '../cli/run-command.js';
import { loadConfig } from '../config/load-config.js';
import { ProblemsError } from '../errors.js';
import { runtimePaths } from '../paths.js';
import { buildQemuArgv } from '../qemu/build-qemu-argv.js';
import { openConsolesWarning, planVnc } from './start-consoles.js';

const dir = mkdtempSync(path.join(tmpdir(), 'snabbvm-vnc-'));
writeFileSync(path.join(dir, 'disk.qcow2'), 'x');
const paths = runtimePaths(dir);
after(() => rmSync(dir, { recursive: true, force: true }));

function configFor(argv: string[], env: NodeJS.ProcessEnv = {}) {
  const parsed = parseRunArgs([...argv, 'disk.qcow2'], env);
  if (parsed === 'exit') throw new Error('unexpected exit');
  return loadConfig({ ...parsed, env, baseDir: dir });
}

test("VNC by default on display 1 of every address, without a password; the web console's display on a unix socket", async () => {
  const plan = await planVnc(configFor([]), paths);
  assert.deepEqual(plan, { listen: '0.0.0.0', display: 1, webSocket: paths.vncWebSocket });
  assert.equal(path.dirname(paths.vncWebSocket), dir, 'in the run folder');
  assert.deepEqual(await planVnc(configFor(['--vnc', '7', '--web', 'none']), paths), { listen: '0.0.0.0', display: 7 }, 'no web console, no second display');
});

test('one warning line names each console open beyond the loopback without a password', () => {
  const both = openConsolesWarning(configFor([]));
  assert.match(both!, /^no password on VNC on 0\.0\.0\.0:5901 \(--vnc-password\) and the web console on 0\.0\.0\.0:8006 \(--web-password\): anyone who reaches them gets/);
  assert.doesNotMatch(both!, /\n/);
  assert.match(openConsolesWarning(configFor(['--vnc-password', 'pw']))!, /^no password on the web console on 0\.0\.0\.0:8006 /);
  assert.match(openConsolesWarning(configFor(['--web-password', 'pw', '--vnc-listen', '::']))!, /^no password on VNC on \[::\]:5901 \(--vnc-password\): /);
  assert.equal(openConsolesWarning(configFor(['--vnc-password', 'pw', '--web-password', 'pw'])), undefined);
  assert.equal(openConsolesWarning(configFor(['--vnc-listen', '127.0.0.1'])), undefined, 'loopback only');
  assert.equal(openConsolesWarning(configFor(['--vnc-listen', '[::1]'])), undefined);
  assert.equal(openConsolesWarning(configFor(['--vnc', 'none', '--web', 'none'])), undefined);
  assert.match(openConsolesWarning(configFor(['--vnc-listen', '127.0.0.1', '--web', 'none', '--net', 'user']))!, /VNC on 127\.0\.0\.1:5901.*the guest included \(10\.0\.2\.2/, 'in --net user the guest reaches the loopback');
});

test('--web-host takes names, repeated or as a list in SNABBVM_WEB_HOST; anything else is a usage error', () => {
  assert.deepEqual(configFor([]).webHosts, []);
  assert.deepEqual(configFor(['--web-host', 'VM1.example.com', '--web-host', 'proxy']).webHosts, ['vm1.example.com', 'proxy']);
  assert.deepEqual(configFor([], { SNABBVM_WEB_HOST: 'a.example, b.example c' }).webHosts, ['a.example', 'b.example', 'c']);
  for (const bad of ['https://vm.example', 'vm.example:8006', 'a b', 'under_score']) {
    assert.throws(
      () => configFor(['--web-host', bad]),
      (err: unknown) => err instanceof ProblemsError && err.exitCode === 2 && /--web-host '.*' is not a host name/.test(err.message),
      bad,
    );
  }
});

test('--vnc none turns VNC off', async () => {
  assert.equal(await planVnc(configFor(['--vnc', 'none']), paths), undefined);
});

test('an IPv6 listen address gets the brackets QEMU needs', async () => {
  assert.equal((await planVnc(configFor(['--vnc-listen', '::']), paths))!.listen, '[::]');
  assert.equal((await planVnc(configFor(['--vnc-listen', '[::1]']), paths))!.listen, '[::1]');
});

test('a VNC password goes to a 0600 file read as a QEMU secret, never onto the command line', async () => {
  const config = configFor([], { SNABBVM_VNC_PASSWORD: 'pw-1234' });
  const plan = (await planVnc(config, paths))!;
  assert.equal(plan.passwordFile, paths.vncPasswordFile);
  assert.equal(readFileSync(paths.vncPasswordFile, 'utf8'), 'pw-1234');
  assert.equal(statSync(paths.vncPasswordFile).mode & 0o777, 0o600);
  const argv = buildQemuArgv({ binary: 'qemu-system-x86_64', name: 'vm1', accel: 'tcg', cpus: 1, memoryMiB: 512, memory: { kind: 'anonymous' }, disk: paths.overlay, nics: [], paths, vnc: plan, vhostUserWithoutMsix: false });
  assert.ok(argv.includes(`secret,id=vncpass,file=${paths.vncPasswordFile}`));
  assert.ok(argv.includes('0.0.0.0:1,password-secret=vncpass'));
  assert.ok(argv.includes(`unix:${paths.vncWebSocket},id=web,password-secret=vncpass`), "the web console's display asks for the same password");
  assert.ok(!argv.some((a) => a.includes('pw-1234')));
});

test('a VNC password longer than 8 characters is refused, not cut', () => {
  assert.throws(
    () => configFor(['--vnc-password', 'ninechars']),
    (err: unknown) => err instanceof ProblemsError && err.exitCode === 2 && /--vnc-password must be 1 to 8 characters/.test(err.message),
  );
  assert.equal(configFor(['--vnc-password', 'eightchr']).vncPassword, 'eightchr');
});
