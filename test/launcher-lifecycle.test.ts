/**
 * The launcher foundation against real QEMU (TCG) and the real Debian cloud image fixture:
 * boot to the login prompt, SIGTERM → ACPI powerdown → exit 0, nothing left; forced stop; ISO; bad input.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { cloudImagePath, whyNoVmTests } from './helpers/fixtures.js';
import { processesMatching, runLauncher, startLauncher } from './helpers/launcher.js';

const skip = whyNoVmTests();
const work = mkdtempSync(path.join(tmpdir(), 'snabbvm-lifecycle-'));
/** common options: TCG, no network or consoles, a run folder the test can inspect */
const baseArgs = (name: string) => ['--accel', 'tcg', '--net', 'none', '--vnc', 'none', '--web', 'none', '--console', 'stdio', '--name', name, '--run-dir', path.join(work, name)];

async function assertNothingLeft(name: string) {
  // matched by the run folder, unique to this test run (a concurrent run may use the same VM names)
  assert.deepEqual(await processesMatching(path.join(work, name)), [], 'no QEMU process is left');
  assert.equal(existsSync(path.join(work, name)), false, 'the run folder (sockets, overlay, logs) is gone');
}

describe('launcher lifecycle', { skip }, () => {
  test('boots the cloud image to a login prompt; SIGTERM powers it off over ACPI; exit 0; nothing left', { timeout: 900_000 }, async () => {
    const image = cloudImagePath();
    const before = statSync(image);
    // --net user: with no NIC at all, Debian's networking.service waits minutes for one before the login prompt
    const vm = startLauncher([...baseArgs('boot'), '--net', 'user', image]);
    await vm.waitFor(/is running \(tcg/, 30_000);
    // the overlay sits on the original: QEMU never writes the image itself
    const info = JSON.parse(execFileSync('qemu-img', ['info', '-U', '--output=json', path.join(work, 'boot', 'disk.qcow2')], { encoding: 'utf8' }));
    assert.equal(info['backing-filename'], image);
    assert.equal(info['backing-filename-format'], 'qcow2');
    await vm.waitFor(/login: /, 720_000);
    const t0 = Date.now();
    vm.child.kill('SIGTERM');
    const { code } = await vm.exited;
    const elapsed = (Date.now() - t0) / 1000;
    assert.equal(code, 0, vm.stderr());
    assert.match(vm.stdout(), /reboot: Power down/, 'the guest powered off (kernel message on the serial console)');
    assert.match(vm.stderr(), /SIGTERM: shutting the VM down \(ACPI powerdown/);
    assert.match(vm.stderr(), /the guest powered off/);
    assert.ok(elapsed < 60, `ACPI shutdown took ${elapsed} s`);
    await assertNothingLeft('boot');
    const after = statSync(image);
    assert.equal(after.mtimeMs, before.mtimeMs, 'the original image is untouched');
    assert.equal(after.size, before.size);
  });

  test('a guest that ignores the powerdown (still in its firmware) is forced after --stop-timeout: exit 5', { timeout: 120_000 }, async () => {
    // a raw copy of the image also shows that raw images boot through a qcow2 overlay
    const raw = path.join(work, 'image.raw');
    execFileSync('qemu-img', ['convert', '-O', 'raw', cloudImagePath(), raw]);
    const vm = startLauncher([...baseArgs('forced'), '--stop-timeout', '3', raw]);
    await vm.waitFor(/is running/, 30_000);
    const info = JSON.parse(execFileSync('qemu-img', ['info', '-U', '--output=json', path.join(work, 'forced', 'disk.qcow2')], { encoding: 'utf8' }));
    assert.equal(info['backing-filename-format'], 'raw');
    const t0 = Date.now();
    vm.child.kill('SIGTERM');
    const { code } = await vm.exited;
    const elapsed = (Date.now() - t0) / 1000;
    assert.equal(code, 5, vm.stderr());
    assert.match(vm.stderr(), /did not power off within 3 s; forcing QEMU to quit/);
    assert.ok(elapsed >= 3 && elapsed < 15, `forced after ${elapsed} s`);
    await assertNothingLeft('forced');
  });

  test('an ISO is attached as a CD-ROM with a blank disk of --disk-size', { timeout: 60_000 }, async () => {
    const isoDir = path.join(work, 'iso-content');
    mkdirSync(isoDir);
    writeFileSync(path.join(isoDir, 'README'), 'not bootable');
    const iso = path.join(work, 'install.iso');
    execFileSync('genisoimage', ['-quiet', '-V', 'TEST', '-o', iso, isoDir]);
    const vm = startLauncher([...baseArgs('iso'), '--disk-size', '3G', '--stop-timeout', '0', iso]);
    await vm.waitFor(/is running/, 30_000);
    const disk = JSON.parse(execFileSync('qemu-img', ['info', '-U', '--output=json', path.join(work, 'iso', 'disk.qcow2')], { encoding: 'utf8' }));
    assert.equal(disk['virtual-size'], 3 * 2 ** 30);
    assert.equal(disk['backing-filename'], undefined, 'a blank disk');
    const qemuArgs = (await processesMatching(path.join(work, 'iso'))).join('\n');
    assert.match(qemuArgs, new RegExp(`file=${iso},format=raw,if=none,id=cd0,media=cdrom,readonly=on -device ide-cd,drive=cd0,bus=ide\\.0 -boot once=d`));
    vm.child.kill('SIGTERM');
    assert.equal((await vm.exited).code, 5);
    await assertNothingLeft('iso');
  });
});

test('QEMU that exits at start is reported at once: its last line, exit 1, nothing left', { skip, timeout: 60_000 }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'snabbvm-qemu-fails-'));
  // a stand-in for QEMU refusing its command line (the hidden --qemu option points the launcher at it)
  const fake = path.join(dir, 'qemu-system-x86_64');
  writeFileSync(fake, '#!/bin/sh\necho "qemu: starting" >&2\necho "qemu-system-x86_64: -frob: invalid option" >&2\nexit 1\n', { mode: 0o755 });
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', path.join(dir, 'disk.qcow2'), '16M']);
  const t0 = Date.now();
  const r = await runLauncher([...baseArgs('qemu-fails'), '--qemu', fake, path.join(dir, 'disk.qcow2')]);
  const seconds = (Date.now() - t0) / 1000;
  assert.equal(r.code, 1, r.stderr);
  const errors = r.stderr.trim().split('\n').filter((l) => l.startsWith('snabbvm: error:'));
  assert.deepEqual(errors, [`snabbvm: error: ${fake} exited with code 1: qemu-system-x86_64: -frob: invalid option`], r.stderr);
  // before the fix the launcher sat out QMP's 30 s connect timeout
  assert.ok(seconds < 10, `exited after ${seconds} s`);
  await assertNothingLeft('qemu-fails');
  rmSync(dir, { recursive: true });
});

describe('bad input: one line, the right exit code, nothing left', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'snabbvm-badinput-'));
  writeFileSync(path.join(dir, 'page.img'), '<!DOCTYPE html>\n<html><body>Not Found</body></html>\n'.repeat(100));
  mkdirSync(path.join(dir, 'user-data.d'));
  const cases: [string, string[], number, RegExp][] = [
    ['a missing image', ['missing.qcow2'], 3, /image .*missing\.qcow2 does not exist/],
    ['a non-image file', ['page.img'], 3, /page\.img is not a disk image: it is an HTML or XML page/],
    ['an unknown option', ['--frobnicate', 'page.img'], 2, /unknown option '--frobnicate'/],
    ['-c 0', ['-c', '0', 'page.img'], 2, /--cpus '0' is not valid/],
    ['-m 12XB', ['-m', '12XB', 'page.img'], 2, /--memory '12XB' is not valid/],
    ['an unreadable user-data path', ['-u', 'user-data.d', 'page.img'], 3, /user-data .*user-data\.d is not a file/],
  ];
  for (const [what, args, exitCode, message] of cases) {
    test(what, { skip: what === 'a non-image file' ? skip : undefined }, async () => {
      const runDir = path.join(dir, 'run');
      const r = await runLauncher(['--accel', 'tcg', '--net', 'none', '--run-dir', runDir, ...args], { cwd: dir });
      assert.equal(r.code, exitCode, r.stderr);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0]!, /^snabbvm: error: /);
      assert.match(lines[0]!, message);
      assert.doesNotMatch(r.stderr, /\s+at .*\.js:\d+/, 'no stack trace');
      assert.equal(existsSync(runDir), false, 'no run folder left');
      assert.deepEqual(readdirSync(dir).sort(), ['page.img', 'user-data.d']);
    });
  }
});
