/**
 * A host whose KVM is broken, with stand-in QEMUs (test/helpers/stand-in-qemu.ts, passed as --qemu) and a
 * stand-in /dev/kvm (a file that opens read-write, passed as the hidden --kvm-device), so these run on any host:
 * --accel auto warns in one line with QEMU's reason and boots the real fixture image under TCG to its cloud-init
 * marker, whether KVM fails the probe (abort, hang) or the VM itself (abort at start, a stall after the firmware);
 * --accel kvm exits 4 within 10 s with the reason. `snabbvm status --json` and the web console's status say
 * which accelerator runs and why.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cloudImagePath, whyNoVmTests } from './helpers/fixtures.js';
import { freePort } from './helpers/free-port.js';
import { launcherPath, processesMatching, runLauncher, startLauncher } from './helpers/launcher.js';
import { STALL_BANNER, writeStandInQemu, type StandInKind } from './helpers/stand-in-qemu.js';

const skip = whyNoVmTests();
const work = mkdtempSync(path.join(tmpdir(), 'snabbvm-accel-'));
after(() => rmSync(work, { recursive: true, force: true }));
// the fixture build (about 3 min on a fresh machine) is not part of the probe's timing or the boot timeouts
before(() => {
  if (!skip) cloudImagePath();
}, { timeout: 900_000 });
const fakeKvm = path.join(work, 'kvm');
writeFileSync(fakeKvm, '');
const userData = path.join(work, 'user-data.yaml');
writeFileSync(userData, '#cloud-config\nruncmd:\n  - echo "ACCEL-MARK runcmd ran" > /dev/ttyS0\n');
/** no network or VNC; the serial console on stdout; the stand-in KVM device */
const baseArgs = (name: string) => ['--net', 'user', '--vnc', 'none', '--web', 'none', '--console', 'stdio', '--name', name, '--run-dir', path.join(work, name), '--kvm-device', fakeKvm];
const WARNING = /snabbvm: warning: KVM does not work on this host \((.*)\): running under TCG, 10-50x slower\n/;
/** a TCG boot to cloud-init's runcmd on a busy 2-core machine */
const BOOT_MS = 720_000;

function status(name: string): { accel?: string; accelFallback?: string; state: string } {
  return JSON.parse(execFileSync(process.execPath, [launcherPath, 'status', '--json', '--run-dir', path.join(work, name)], { encoding: 'utf8' }));
}

async function assertNothingLeft(name: string) {
  assert.deepEqual(await processesMatching(path.join(work, name)), [], 'no QEMU process is left');
  assert.equal(existsSync(path.join(work, name)), false, 'the run folder is gone');
}

/**
 * --accel auto with the stand-in: the one-line warning with the expected reason, then the fixture boots under
 * TCG to its runcmd marker; status says tcg and why; SIGTERM powers it off. Returns the reason.
 */
async function bootsUnderTcgAfterFallback(kind: StandInKind, expectedReason: RegExp) {
  const name = `fallback-${kind}`;
  const qemu = writeStandInQemu(work, kind);
  const t0 = Date.now();
  const vm = startLauncher([...baseArgs(name), '--qemu', qemu, '-u', userData, cloudImagePath()]);
  const reason = (await vm.waitFor(WARNING, 90_000))[1]!;
  const fallbackSec = (Date.now() - t0) / 1000;
  console.log(`# ${kind}: fell back after ${fallbackSec.toFixed(1)} s: ${reason}`);
  assert.match(reason, expectedReason);
  await vm.waitFor(/is running \(tcg,/, 60_000);
  await vm.waitFor(/ACCEL-MARK runcmd ran/, BOOT_MS);
  console.log(`# ${kind}: the guest ran its runcmd under TCG ${((Date.now() - t0) / 1000).toFixed(0)} s after the start`);
  const warnings = vm.stderr().split('\n').filter((l) => l.startsWith('snabbvm: warning:'));
  assert.equal(warnings.length, 1, `exactly one warning:\n${vm.stderr()}`);
  const s = status(name);
  assert.equal(s.accel, 'tcg');
  assert.equal(s.accelFallback, reason);
  vm.child.kill('SIGTERM');
  assert.equal((await vm.exited).code, 0, vm.stderr());
  await assertNothingLeft(name);
  return { reason, fallbackSec, vm };
}

describe('a broken KVM under --accel auto: warn with the reason, boot under TCG', { skip }, () => {
  test('QEMU aborts with the MSR assertion under KVM: the probe fails, the VM starts under TCG', { timeout: BOOT_MS + 120_000 }, async () => {
    const { fallbackSec } = await bootsUnderTcgAfterFallback('abort', /kvm_buf_set_msrs: Assertion .* \(QEMU was killed by SIGABRT\)$/);
    assert.ok(fallbackSec < 10, `the probe took ${fallbackSec} s`);
  });

  test('QEMU hangs under KVM: the probe gives up within 5 s, the VM starts under TCG', { timeout: BOOT_MS + 120_000 }, async () => {
    const { fallbackSec } = await bootsUnderTcgAfterFallback('hang', /^a test guest ran no code under KVM within 5 s$/);
    assert.ok(fallbackSec < 15, `the fallback came after ${fallbackSec} s`);
  });

  test('the probe passes, then QEMU dies under KVM at start: restarted once under TCG', { timeout: BOOT_MS + 120_000 }, async () => {
    await bootsUnderTcgAfterFallback('abort-after-probe', /^under KVM, .*kvm_buf_set_msrs: Assertion .*SIGABRT\)$/);
  });

  test('the probe passes, then the guest stops after "Welcome to GRUB": restarted under TCG', { timeout: BOOT_MS + 120_000 }, async () => {
    const { fallbackSec, vm } = await bootsUnderTcgAfterFallback(
      'stall-after-probe',
      new RegExp(`^the guest stopped under KVM after "${STALL_BANNER}": no new output and the same instruction pointer for 8 s$`),
    );
    assert.ok(fallbackSec < 30, `the stall was caught after ${fallbackSec} s`);
    // the stand-in firmware's banners came before the restart, the real boot after it
    const out = vm.stdout();
    assert.ok(out.indexOf(STALL_BANNER) < out.indexOf('ACCEL-MARK'), 'the banners of the stalled start come first');
  });

  test("the real QEMU under KVM on this host (no /dev/kvm, or one that opens but does not work): its own reason", { timeout: 120_000 }, async () => {
    const name = 'fallback-real-qemu';
    const webPort = await freePort(18406);
    const vm = startLauncher([...baseArgs(name), '--web', String(webPort), '--web-listen', '127.0.0.1', '--stop-timeout', '0', '-u', userData, cloudImagePath()]);
    const reason = (await vm.waitFor(WARNING, 30_000))[1]!;
    console.log(`# the real QEMU under KVM here: ${reason}`);
    // QEMU's own words, whatever this host's /dev/kvm is: absent ("Could not access KVM kernel module"), not KVM
    // ("failed to initialize kvm"), or there but broken (the MSR assertion, QEMU killed by SIGABRT)
    assert.match(reason, /KVM|kvm/);
    assert.match(reason, /\(QEMU (exited with code \d+|was killed by SIG[A-Z]+)\)$/);
    await vm.waitFor(/is running \(tcg,/, 60_000);
    const fromWeb = (await (await fetch(`http://127.0.0.1:${webPort}/api/status`)).json()) as { accel: string; accelFallback: string };
    assert.equal(fromWeb.accel, 'tcg');
    assert.equal(fromWeb.accelFallback, reason);
    vm.child.kill('SIGTERM');
    assert.equal((await vm.exited).code, 5, vm.stderr()); // still in its firmware: forced after --stop-timeout 0
    await assertNothingLeft(name);
  });
});

describe('a broken KVM under --accel kvm: exit 4 within 10 s with the reason, nothing left', { skip }, () => {
  const cases: [string, string | undefined, RegExp][] = [
    ['QEMU aborts with the MSR assertion', 'abort', new RegExp(`kvm_buf_set_msrs: Assertion .* \\(QEMU was killed by SIGABRT\\)`)],
    ['QEMU hangs', 'hang', /a test guest ran no code under KVM within 5 s/],
    ["the real QEMU's KVM init fails", undefined, /KVM/],
  ];
  for (const [what, kind, reason] of cases) {
    test(what, { timeout: 60_000 }, async () => {
      const name = `kvm-${kind ?? 'real'}`;
      const qemu = kind === undefined ? [] : ['--qemu', writeStandInQemu(work, kind as StandInKind)];
      const t0 = Date.now();
      const r = await runLauncher([...baseArgs(name), '--accel', 'kvm', ...qemu, cloudImagePath()]);
      const sec = (Date.now() - t0) / 1000;
      assert.equal(r.code, 4, r.stderr);
      const errors = r.stderr.trim().split('\n').filter((l) => l.startsWith('snabbvm: error:'));
      assert.equal(errors.length, 1, r.stderr);
      assert.match(errors[0]!, /^snabbvm: error: --accel kvm: KVM does not work on this host: /);
      assert.match(errors[0]!, reason);
      assert.match(errors[0]!, /; use --accel tcg/);
      assert.ok(sec < 10, `exited after ${sec} s`);
      await assertNothingLeft(name);
    });
  }
});
