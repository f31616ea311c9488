import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { MSR_ASSERTION, writeStandInQemu } from '../../test/helpers/stand-in-qemu.js';
import { ExitCode, UserError } from '../errors.js';
import {
  buildProbeFirmware,
  chooseAccel,
  describeQemuFailure,
  guestLooksStuck,
  looksLikeKvmFailure,
  parseRip,
  probeGuestCode,
  probeKvm,
  PROBE_TIMEOUT_MS,
  serialShowsOs,
} from './probe-accel.js';
import { lastLine } from './watch-kvm-start.js';

const work = mkdtempSync(path.join(tmpdir(), 'snabbvm-probe-accel-'));
after(() => rmSync(work, { recursive: true, force: true }));
/** something that opens read-write where /dev/kvm would: the launcher's own check passes, QEMU's KVM init decides */
const openableDevice = path.join(work, 'kvm');
writeFileSync(openableDevice, '');

const noQemu = (() => {
  try {
    execFileSync('qemu-system-x86_64', ['--version'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)';
  }
})();
const isHostError = (pattern: RegExp) => (e: unknown) => e instanceof UserError && e.exitCode === ExitCode.HostNotReady && pattern.test(e.message);

test('a missing KVM device: auto falls back to TCG with the reason, kvm exits 4, tcg does not probe', async () => {
  assert.match(probeKvm('/nonexistent/kvm')!, /does not exist/);
  const options = { qemuBinary: '/nonexistent/qemu', firmware: path.join(work, 'kvm-probe.bin'), device: '/nonexistent/kvm' };
  const auto = await chooseAccel('auto', options);
  assert.equal(auto.accel, 'tcg');
  assert.match(auto.fallbackReason!, /\/nonexistent\/kvm does not exist/);
  assert.deepEqual(await chooseAccel('tcg', options), { accel: 'tcg' });
  await assert.rejects(chooseAccel('kvm', options), isHostError(/--accel tcg/));
});

test('the probe firmware: 64 KiB, guest code at the reset vector', () => {
  const image = buildProbeFirmware();
  assert.equal(image.length, 0x10000);
  assert.deepEqual([...image.subarray(0xfff0, 0xfff4)], [0xb0, 0x2a, 0xe6, 0xf4]);
});

test('the probe firmware runs under real QEMU (TCG) and is detected, in well under 2 s', { skip: noQemu }, async (t) => {
  const result = await probeGuestCode({ qemuBinary: 'qemu-system-x86_64', accel: 'tcg', firmware: path.join(work, 'kvm-probe.bin') });
  t.diagnostic(`probe under TCG: ${JSON.stringify(result)}`);
  assert.equal(result.ok, true, JSON.stringify(result));
  assert.ok(result.ms < 2000, `took ${result.ms} ms`);
});

test('a QEMU that aborts with the MSR assertion under KVM: auto falls back with its reason; kvm exits 4 within 10 s', { skip: noQemu }, async () => {
  const qemu = writeStandInQemu(work, 'abort');
  const options = { qemuBinary: qemu, firmware: path.join(work, 'kvm-probe.bin'), device: openableDevice };
  const auto = await chooseAccel('auto', options);
  assert.equal(auto.accel, 'tcg');
  const assertion = MSR_ASSERTION.replace('qemu-system-x86_64: ', '');
  assert.equal(auto.fallbackReason, `error: failed to set MSR 0x10a to 0x2000000c8b; ${assertion} (QEMU was killed by SIGABRT)`);
  const t0 = Date.now();
  await assert.rejects(chooseAccel('kvm', options), isHostError(/^--accel kvm: KVM does not work on this host: .*kvm_buf_set_msrs: Assertion .*SIGABRT\); use --accel tcg/));
  assert.ok(Date.now() - t0 < 10_000);
});

test(`a QEMU that hangs under KVM: the probe gives up after ${PROBE_TIMEOUT_MS / 1000} s`, { skip: noQemu }, async () => {
  const qemu = writeStandInQemu(work, 'hang');
  const t0 = Date.now();
  const auto = await chooseAccel('auto', { qemuBinary: qemu, firmware: path.join(work, 'kvm-probe.bin'), device: openableDevice });
  const ms = Date.now() - t0;
  assert.equal(auto.accel, 'tcg');
  assert.equal(auto.fallbackReason, `a test guest ran no code under KVM within ${PROBE_TIMEOUT_MS / 1000} s`);
  assert.ok(ms >= PROBE_TIMEOUT_MS && ms < PROBE_TIMEOUT_MS + 1000, `gave up after ${ms} ms`);
});

test('the real probe with the real QEMU under KVM: whatever this host has, the answer comes within 5 s', { skip: noQemu }, async (t) => {
  const result = await probeGuestCode({ qemuBinary: 'qemu-system-x86_64', accel: 'kvm', firmware: path.join(work, 'kvm-probe.bin') });
  // With /dev/kvm missing QEMU says so; with a working KVM the guest code runs; with a broken one, QEMU's reason.
  t.diagnostic(`this host's KVM: ${JSON.stringify(result)}`);
  assert.ok(result.ms < PROBE_TIMEOUT_MS + 1000);
  if (probeKvm() !== undefined) assert.equal(result.ok, false, 'no usable /dev/kvm, yet the probe passed');
  if (!result.ok) assert.ok(result.reason.length > 0);
});

test("this host's own /dev/kvm through the launcher's probe (where it has one)", { skip: noQemu ?? probeKvm() }, async (t) => {
  const t0 = Date.now();
  const choice = await chooseAccel('auto', { qemuBinary: 'qemu-system-x86_64', firmware: path.join(work, 'kvm-probe.bin') });
  t.diagnostic(`this host's KVM, after ${Date.now() - t0} ms: ${JSON.stringify(choice)}`);
  assert.ok(choice.accel === 'kvm' || choice.fallbackReason !== undefined);
  assert.ok(Date.now() - t0 < PROBE_TIMEOUT_MS + 1000);
});

test("QEMU's reason in one line: its last two stderr lines, without its name, and how it ended", () => {
  assert.equal(
    describeQemuFailure({ code: 1, signal: null }, 'Could not access KVM kernel module: No such file or directory\nqemu-system-x86_64: -accel kvm: failed to initialize kvm: No such file or directory\n'),
    'Could not access KVM kernel module: No such file or directory; failed to initialize kvm: No such file or directory (QEMU exited with code 1)',
  );
  assert.equal(describeQemuFailure({ code: null, signal: 'SIGABRT' }, ''), 'QEMU was killed by SIGABRT');
  // a death under KVM that TCG would repeat is not a reason to fall back
  assert.equal(looksLikeKvmFailure({ code: null, signal: 'SIGABRT' }, MSR_ASSERTION), true);
  assert.equal(looksLikeKvmFailure({ code: 1, signal: null }, 'error: kvm run failed Invalid argument'), true);
  assert.equal(looksLikeKvmFailure({ code: 1, signal: null }, "qemu-system-x86_64: -drive file=x: Could not open 'x': No such file or directory"), false);
});

test('stall detection: no new serial output and the same RIP, also after firmware output', () => {
  const silent = Array.from({ length: 5 }, () => ({ rip: 'fff0', serialBytes: 0 }));
  assert.equal(guestLooksStuck(silent), true);
  assert.equal(guestLooksStuck(silent.slice(0, 4)), false, 'too few samples to tell');
  // "Welcome to GRUB", then nothing: the output before the window does not count as progress
  const afterGrub = [{ rip: '1234', serialBytes: 40 }, ...Array.from({ length: 5 }, () => ({ rip: '0011', serialBytes: 120 }))];
  assert.equal(guestLooksStuck(afterGrub), true);
  assert.equal(guestLooksStuck([...silent.slice(0, 4), { rip: 'fff0', serialBytes: 10 }]), false, 'new output is progress');
  assert.equal(guestLooksStuck([...silent.slice(0, 4), { rip: '1000', serialBytes: 0 }]), false, 'a moving RIP is progress');
  assert.equal(guestLooksStuck(Array.from({ length: 5 }, () => ({ rip: 'no answer', serialBytes: 0 }))), true, 'a vCPU that never answers');
  assert.equal(guestLooksStuck(Array.from({ length: 5 }, () => ({ rip: undefined, serialBytes: 0 }))), false, 'unknown is not stuck');
  assert.equal(parseRip('RAX=0000 RBX=0\nRIP=000000000000fff0 RFL=00000002'), '000000000000fff0');
  assert.equal(parseRip('EAX=00000000\nEIP=0000fff0 EFL=00000002'), '0000fff0');
});

test('firmware and boot loader output is not the OS; kernel messages and a login prompt are', () => {
  assert.equal(serialShowsOs('SeaBIOS (version 1.16.2-debian-1.16.2-1)\r\nBooting from Hard Disk...\r\nWelcome to GRUB!\r\n\x1b[0m\x1b[30m'), false);
  assert.equal(serialShowsOs('iPXE (http://ipxe.org) 00:02.0 CA00 PCI2.10 PnP PMM+3EFD0C30+3EF30C30 CA00\r\n'), false);
  assert.equal(serialShowsOs('Welcome to GRUB!\r\n[    0.000000] Linux version 6.1.0-28-cloud-amd64'), true);
  assert.equal(serialShowsOs('debian login: '), true);
  assert.equal(lastLine('SeaBIOS (version x)\r\n\x1b[2JWelcome to GRUB!\r\n\r\n'), 'Welcome to GRUB!');
});
