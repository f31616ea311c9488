/**
 * The README's `docker run` command (no SNABBVM_ACCEL, so --accel auto) on a host whose KVM is broken: the
 * container gets a /dev/kvm that exists and opens read-write but is no KVM device (/dev/null's, by --device), so
 * the launcher's open() passes and QEMU's own KVM init fails, as on a nested host. The warning with QEMU's reason
 * must be in `docker logs`, the guest must boot under TCG to its cloud-init marker, and `snabbvm status --json`
 * must say tcg and why.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { cloudImagePath, whyNoVmTests } from './helpers/fixtures.js';
import { buildBaseImage, buildSnabbvmImage, docker, DOCKER, flattenTerminalOutput, makeUserFolder, removeContainer, setUpDocker, whyNoDockerTests } from './helpers/docker-image.js';

const skip = whyNoDockerTests() ?? whyNoVmTests();
if (skip) console.log(`# SKIPPING the broken-KVM Docker test: ${skip}`);
const IMAGE = 'snabbvm-kvm14:test';
const NAME = 'snabbvm-kvm14-vm1';
/** a TCG boot to cloud-init's runcmd on a busy 2-core machine */
const BOOT_MS = 900_000;

describe('the README docker run on a host with a broken KVM', { skip }, () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  const followers: ChildProcess[] = [];

  before(async () => {
    setUpDocker();
    const t0 = Date.now();
    await buildSnabbvmImage({ tag: IMAGE, baseImage: buildBaseImage(), snabb: 'none' });
    console.log(`# built ${IMAGE} (SNABB_SOURCE=none) in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  });

  after(async () => {
    for (const f of followers) f.kill();
    for (const c of cleanups.reverse()) await c();
  });

  test('falls back to TCG with the warning in docker logs, boots to cloud-init, status says why', { timeout: BOOT_MS + 300_000 }, async () => {
    const u = makeUserFolder('snabbvm-kvm14-u-', { 'guest.qcow2': cloudImagePath() });
    cleanups.push(() => rmSync(u, { recursive: true, force: true }));
    writeFileSync(path.join(u, 'user_data.txt'), '#cloud-config\nruncmd:\n  - echo "KVM14-MARKER $(hostname) END" > /dev/ttyS0\n');
    await removeContainer(NAME);
    // the README's command, detached, plus a /dev/kvm that is /dev/null (char 1:3). A bind mount, because
    // --privileged makes docker ignore --device (it passes the host's devices instead).
    const argv = ['run', '--name', NAME, '-d', '--rm', '--privileged', '-i', '-t', '-v', '/dev/null:/dev/kvm', '-v', `${u}:/u`, IMAGE, '-u', 'user_data.txt', 'guest.qcow2'];
    console.log(`# ${DOCKER} ${argv.join(' ')}`);
    const t0 = Date.now();
    await docker(argv);
    cleanups.push(() => removeContainer(NAME));
    let text = '';
    const logs = spawn(DOCKER, ['logs', '-f', NAME], { stdio: ['ignore', 'pipe', 'pipe'] });
    logs.stdout.on('data', (b: Buffer) => (text += b.toString('latin1')));
    logs.stderr.on('data', (b: Buffer) => (text += b.toString('latin1')));
    followers.push(logs);
    const waitForLog = async (pattern: RegExp, timeoutMs: number) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const m = flattenTerminalOutput(text).match(pattern);
        if (m) return m;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern} in docker logs; the end of them:\n${flattenTerminalOutput(text).slice(-3000)}`);
        await sleep(1000);
      }
    };

    const warning = await waitForLog(/snabbvm: warning: KVM does not work on this host \((.*?)\): running under TCG, 10-50x slower/, 120_000);
    console.log(`# after ${((Date.now() - t0) / 1000).toFixed(1)} s, in docker logs: ${warning[0]}`);
    const device = (await docker(['exec', NAME, 'stat', '-c', '%F %t:%T', '/dev/kvm'])).trim();
    console.log(`# the container's /dev/kvm: ${device}`);
    // QEMU's own words for a device that is not KVM (its KVM_GET_API_VERSION ioctl fails)
    assert.match(warning[1]!, /failed to initialize kvm/);
    await waitForLog(/is running \(tcg,/, 120_000);
    const marker = await waitForLog(/KVM14-MARKER (\S+) END/, BOOT_MS);
    console.log(`# cloud-init marker in docker logs ${((Date.now() - t0) / 1000).toFixed(0)} s after docker run: ${marker[0]}`);

    const status = JSON.parse(await docker(['exec', NAME, 'snabbvm', 'status', '--json'])) as { state: string; accel: string; accelFallback: string };
    assert.equal(status.state, 'running');
    assert.equal(status.accel, 'tcg');
    assert.equal(status.accelFallback, warning[1]);
    await docker(['stop', '-t', '90', NAME], { timeoutMs: 150_000 });
  });
});
