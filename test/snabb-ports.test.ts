/**
 * Snabb ports end to end, with the real patched Snabb, real QEMU (TCG) and the real cloud image and cloud-init.
 * One pair of boots covers every check:
 *
 *   external `snabb snabbnfv traffic soft` (the test's) ── sw/a.sock ── VM A eth1 10.66.1.1
 *                                                       └─ sw/b.sock ── VM B eth1 10.66.1.2
 *   launcher A's own Snabb (`soft,peer=`)              ── VM A eth2 10.66.2.1 ── link-b.sock ── VM B eth2 10.66.2.2
 *
 * VM A pings both of B's addresses every second and writes the results to its serial console. The test changes
 * the external switch's config file live (VLANs, an ICMP filter) and kills the Snabb launcher A supervises.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, describe, test } from 'node:test';
import { renderSnabbConfig, type SnabbPort } from '../src/snabb/render-snabb-config.js';
import { cloudImagePath, whyNoVmTests } from './helpers/fixtures.js';
import { processesMatching, startLauncher, type LauncherRun } from './helpers/launcher.js';

const SNABB = '/usr/local/bin/snabb';
const skip = whyNoVmTests() ?? (existsSync(SNABB) ? undefined : `${SNABB} is not installed (run scripts/build-snabb.sh; see docs/snabb.md)`);
if (skip) console.log(`# SKIPPING Snabb end-to-end tests: ${skip}`);

const BOOT_MS = 900_000;
const CHANGE_MS = 90_000;

/** VM A's pinger: one line per target and round on the serial console, started as its own systemd unit. */
const USER_DATA = `#cloud-config
# no SSH host keys: seconds of TCG time the test doesn't need
ssh_genkeytypes: []
write_files:
  - path: /usr/local/bin/pinger
    permissions: '0755'
    content: |
      #!/bin/sh
      while true; do
        for t in sw:10.66.1.2 link:10.66.2.2; do
          if ping -c1 -W1 "\${t#*:}" >/dev/null 2>&1; then r=ok; else r=fail; fi
          echo "PING \${t%%:*} $r" >/dev/ttyS0
        done
        sleep 1
      done
runcmd:
  - [systemd-run, --unit=pinger, /usr/local/bin/pinger]
`;

/** Results of one ping target in the serial log after `offset`. */
function pingResults(serialLog: string, name: string, offset: number): string[] {
  let text = '';
  try {
    text = readFileSync(serialLog, 'latin1').slice(offset);
  } catch {}
  return [...text.matchAll(/PING (\w+) (ok|fail)/g)].filter((m) => m[1] === name).map((m) => m[2]!);
}

/** Waits for `streak` results in a row equal to `want` after offset. */
async function waitForPings(serialLog: string, name: string, want: 'ok' | 'fail', offset: number, timeoutMs: number, streak = 3): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const results = pingResults(serialLog, name, offset);
    let run = 0;
    for (const r of results) {
      run = r === want ? run + 1 : 0;
      if (run >= streak) return;
    }
    if (Date.now() > deadline) {
      const tail = readFileSync(serialLog, 'latin1').slice(-2000);
      throw new Error(`no ${streak} pings '${want}' in a row to ${name} within ${timeoutMs / 1000} s; results: ${results.join(' ')}\n--- serial log tail:\n${tail}`);
    }
    await sleep(1000);
  }
}

/**
 * Snabb's DMA huge page files that no live Snabb links to. The names are physical addresses, so a restarted Snabb
 * may well reuse a name: what matters is that no file is left without an owner.
 */
function orphanDmaFiles(): Set<string> {
  const dir = '/var/run/snabb/hugetlbfs';
  const owned = new Set<string>();
  for (const pid of readdirSync('/var/run/snabb').filter((d) => /^\d+$/.test(d))) {
    try {
      for (const f of readdirSync(`/var/run/snabb/${pid}/group/dma`)) owned.add(readlinkSync(`/var/run/snabb/${pid}/group/dma/${f}`));
    } catch {}
  }
  let files: string[] = [];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('.dma'));
  } catch {}
  return new Set(files.map((f) => path.join(dir, f)).filter((f) => !owned.has(f)));
}
const newOrphans = (before: Set<string>) => [...orphanDmaFiles()].filter((f) => !before.has(f));

/** SIGTERM, a bounded wait, then SIGKILL for the launcher and whatever it started (from its state.json). */
async function stopLauncher(run: LauncherRun | undefined, runDir: string): Promise<void> {
  if (!run || run.child.exitCode !== null || run.child.signalCode !== null) return;
  run.child.kill('SIGTERM');
  if (await Promise.race([run.exited.then(() => true), sleep(120_000).then(() => false)])) return;
  let pids: number[] = [];
  try {
    const state = JSON.parse(readFileSync(path.join(runDir, 'state.json'), 'utf8')) as { qemuPid?: number; ports?: { pid?: number }[] };
    pids = [state.qemuPid, ...(state.ports ?? []).map((p) => p.pid)].filter((p): p is number => p !== undefined);
  } catch {}
  run.child.kill('SIGKILL');
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
}

const logSize = (file: string) => {
  try {
    return readFileSync(file).length;
  } catch {
    return 0;
  }
};

describe('Snabb ports: VM to VM through Snabb', { skip }, () => {
  const work = mkdtempSync(path.join(tmpdir(), 'snabbvm-snabb-'));
  const swDir = path.join(work, 'sw');
  mkdirSync(swDir);
  const switchConfig = path.join(work, 'switch.lua');
  const linkSocket = path.join(work, 'link-b.sock');
  const runA = path.join(work, 'a');
  const runB = path.join(work, 'b');
  const serialA = path.join(runA, 'serial.log');
  let vmA: LauncherRun | undefined;
  let vmB: LauncherRun | undefined;
  let externalSwitch: ReturnType<typeof spawn> | undefined;
  let raisedHugepages = 0;

  /** Rewrites the external switch's config; Snabb notices the new mtime within a second. */
  const setSwitch = (a: Omit<SnabbPort, 'portId'>, b: Omit<SnabbPort, 'portId'>) => {
    writeFileSync(switchConfig, renderSnabbConfig([{ portId: 'a', ...a }, { portId: 'b', ...b }]));
  };

  after(async () => {
    // a launcher killed outright would leave its QEMU and Snabb running: stop them the way a user would
    await Promise.all([stopLauncher(vmA, runA), stopLauncher(vmB, runB)]);
    externalSwitch?.kill('SIGTERM');
    if (raisedHugepages > 0) writeFileSync('/proc/sys/vm/nr_hugepages', String(Math.max(0, Number(readFileSync('/proc/sys/vm/nr_hugepages', 'utf8')) - raisedHugepages)));
    // the external switch's feature caches are the test's to remove
    for (const f of readdirSync('/tmp').filter((f) => f.startsWith(`vhost_features_${work.replace(/\//g, '__')}`))) rmSync(path.join('/tmp', f), { force: true });
    rmSync(work, { recursive: true, force: true });
  });

  test('ping through the soft switch; VLANs; a live ICMP filter; a killed Snabb is restarted; nothing left', { timeout: 1_800_000 }, async () => {
    const image = cloudImagePath();
    // 2 x 256 pages of guest memory, Snabb's own, and room for other users of this machine; CI starts with none
    const meminfo = (key: string) => Number(new RegExp(`^HugePages_${key}:\\s+(\\d+)`, 'm').exec(readFileSync('/proc/meminfo', 'utf8'))![1]);
    const want = 2 * 256 + 128;
    const available = meminfo('Free') - meminfo('Rsvd');
    if (available < want) {
      // the pool's new size must also cover the pages in use, surplus ones included
      const target = meminfo('Total') + (want - available);
      raisedHugepages = target - Number(readFileSync('/proc/sys/vm/nr_hugepages', 'utf8'));
      writeFileSync('/proc/sys/vm/nr_hugepages', String(target));
    }
    writeFileSync(path.join(work, 'user-data'), USER_DATA);
    writeFileSync(path.join(work, 'user-data-b'), '#cloud-config\nssh_genkeytypes: []\n');

    setSwitch({}, {});
    externalSwitch = spawn(SNABB, ['snabbnfv', 'traffic', '-k', '10', '-D', '0', 'soft', switchConfig, `${swDir}/%s.sock`], { stdio: 'ignore' });

    const common = ['--accel', 'tcg', '-m', '512', '--net', 'user', '--vnc', 'none', '--web', 'none', '--console', 'none', '--stop-timeout', '90', '--snabb', SNABB];
    // A first, as it needs huge pages (B would take memfd if they ran out). B's QEMU then waits until A's Snabb
    // has connected to link-b.sock: QEMU starts a guest only once every vhost-user backend is there.
    vmA = startLauncher([...common, '--name', 'snabb-a', '--run-dir', runA, '-u', path.join(work, 'user-data'), image, `vhost-user:${swDir}/a.sock,ip=10.66.1.1/24`, `soft,peer=${linkSocket},ip=10.66.2.1/24`]);
    await vmA.waitFor(/eth2: Snabb \(pid \d+\) serves a software switch/, 120_000);
    vmB = startLauncher([...common, '--name', 'snabb-b', '--run-dir', runB, '-u', path.join(work, 'user-data-b'), image, `vhost-user:${swDir}/b.sock,ip=10.66.1.2/24`, `vhost-user:${linkSocket},ip=10.66.2.2/24`]);
    await vmB.waitFor(new RegExp(`eth2: QEMU serves ${linkSocket}; the VM starts once a vhost-user backend connects to it`), 120_000);
    await Promise.all([vmA.waitFor(/is running/, 180_000), vmB.waitFor(/is running/, 180_000)]);
    const qemuA = (await processesMatching('process=snabbvm-snabb-a')).join('\n');
    assert.match(qemuA, /vectors=0/, 'QEMU 7.2 under TCG gets vectors=0 on vhost-user NICs');
    assert.match(qemuA, /memory-backend-file,id=mem0,size=512M,mem-path=\/dev\/hugepages,share=on/);

    // 1. plain ports: A pings B through the external switch and through its own Snabb
    await waitForPings(serialA, 'sw', 'ok', 0, BOOT_MS);
    await waitForPings(serialA, 'link', 'ok', 0, CHANGE_MS);

    // 2. the same VLAN on both switch ports: still pings
    let mark = logSize(serialA);
    setSwitch({ vlan: 100 }, { vlan: 100 });
    await sleep(3000);
    await waitForPings(serialA, 'sw', 'ok', logSize(serialA), CHANGE_MS);

    // 3. different VLANs: no ping
    setSwitch({ vlan: 100 }, { vlan: 200 });
    mark = logSize(serialA);
    await waitForPings(serialA, 'sw', 'fail', mark, CHANGE_MS);

    // 4. an ingress filter that drops ICMP toward A, set live: pings stop; reverted: they resume
    setSwitch({ ingress: 'not icmp' }, {});
    mark = logSize(serialA);
    await waitForPings(serialA, 'sw', 'fail', mark, CHANGE_MS);
    setSwitch({}, {});
    mark = logSize(serialA);
    await waitForPings(serialA, 'sw', 'ok', mark, CHANGE_MS);

    // 5. kill the Snabb launcher A supervises: it is restarted, and pings resume without a guest reboot
    const stateA = () => JSON.parse(readFileSync(path.join(runA, 'state.json'), 'utf8')) as { qemuPid: number; ports: { name: string; pid?: number; state: string; restarts: number; counters?: { txPackets: number; rxPackets: number } }[] };
    const before = stateA();
    const eth2 = before.ports.find((p) => p.name === 'eth2')!;
    assert.equal(eth2.state, 'running');
    assert.ok(eth2.pid, 'state.json has the Snabb pid');
    const eth1 = before.ports.find((p) => p.name === 'eth1') as unknown as { kind: string; state: string; device: string };
    assert.deepEqual([eth1.kind, eth1.state, eth1.device], ['vhost-user', 'external', `vhost-user:${swDir}/a.sock`]);
    const orphansBefore = orphanDmaFiles();
    const hugetlbfsBefore = new Set(readdirSync('/dev/hugepages'));
    const bootsBefore = (readFileSync(serialA, 'latin1').match(/Linux version/g) ?? []).length;
    mark = logSize(serialA);
    process.kill(eth2.pid!, 'SIGKILL');
    await vmA.waitFor(/Snabb for eth2 \(soft\) was killed by SIGKILL; restarting it in 1 s \(restart 1\)/, 30_000);
    await waitForPings(serialA, 'link', 'ok', mark, CHANGE_MS);
    const afterKill = stateA();
    const eth2After = afterKill.ports.find((p) => p.name === 'eth2')!;
    assert.equal(eth2After.restarts, 1);
    assert.equal(eth2After.state, 'running');
    assert.notEqual(eth2After.pid, eth2.pid);
    assert.equal(afterKill.qemuPid, before.qemuPid, 'the same QEMU');
    assert.equal((readFileSync(serialA, 'latin1').match(/Linux version/g) ?? []).length, bootsBefore, 'the guest did not reboot');
    assert.equal(existsSync(`/var/run/snabb/${eth2.pid}`), false, "the killed Snabb's shared memory is gone");
    assert.deepEqual(newOrphans(orphansBefore), [], "the killed Snabb's DMA huge pages are gone");
    await sleep(6000); // one status refresh
    const counters = stateA().ports.find((p) => p.name === 'eth2')!.counters;
    assert.ok(counters && counters.txPackets > 0 && counters.rxPackets > 0, `counters move: ${JSON.stringify(counters)}`);

    // 6. stop both: exit 0, and no Snabb, socket, run folder, shared memory or feature cache left
    const lastSnabb = eth2After.pid!;
    vmA.child.kill('SIGTERM');
    vmB.child.kill('SIGTERM');
    const [endA, endB] = await Promise.all([vmA.exited, vmB.exited]);
    assert.equal(endA.code, 0, vmA.stderr());
    assert.equal(endB.code, 0, vmB.stderr());
    assert.deepEqual(await processesMatching(path.join(runA, 'snabb')), [], 'no Snabb of launcher A is left');
    externalSwitch.kill('SIGTERM');
    await new Promise((r) => externalSwitch!.once('exit', r));
    await sleep(1000); // its [snabb sup] cleans up after it
    assert.deepEqual(await processesMatching(work), [], 'no QEMU or Snabb of this test is left');
    assert.equal(existsSync(runA), false);
    assert.equal(existsSync(runB), false);
    assert.equal(existsSync(linkSocket), false, "VM B's vhost-user socket is gone");
    assert.equal(existsSync(`/var/run/snabb/${lastSnabb}`), false);
    assert.deepEqual(newOrphans(orphansBefore), [], 'no DMA huge page file of our Snabb is left');
    assert.deepEqual(readdirSync('/dev/hugepages').filter((f) => !hugetlbfsBefore.has(f)), [], 'no guest memory file is left on hugetlbfs');
    assert.deepEqual(readdirSync('/tmp').filter((f) => f.startsWith(`vhost_features_${runA.replace(/\//g, '__')}`)), [], 'no feature cache of launcher A left');
  });
});
