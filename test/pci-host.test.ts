/**
 * The PCI path on a real (emulated) PCI NIC: a TCG "test host" VM, started by our launcher from the PCI test host
 * fixture (test/fixtures/build-pci-test-host.sh), has an Intel 82574L (QEMU's e1000e, 8086:10d3) at 0000:00:10.0
 * whose other end is a UDP socket of this test, and the launcher, node and Snabb from this machine over 9p.
 * test/pci/inside-test-host.sh runs in it from cloud-init and reports in a file on a second, writable share:
 *
 *   1. the launcher refuses the test host's management NIC (virtio): for its model (exit 3), and, the model let
 *      through by --test-pci-model, because the kernel has addresses and routes on it (exit 4, no --force)
 *   2. the launcher with the 82574L as port (let through by --test-pci-model, with its warning): its checks read
 *      the real sysfs, Snabb (with the test-only intel_mp patch, test/pci/intel_mp-82574l.patch) is started on
 *      it and unbinds it from e1000e; after SIGTERM the launcher gives it back to e1000e, whose link comes up
 *   3. (issue stage 3) meanwhile, the launcher's VM is a small inner guest (test/fixtures/build-inner-guest.sh,
 *      nested TCG) with the 82574L as its port: its pings reach this test's responder on the NIC's socket
 *      through vhost-user, Snabb's intel_mp and the NIC; `snabbvm status --json` counts what crossed the wire;
 *      after a SIGKILL of Snabb the launcher restarts it and the pings come through again
 *   4. (issue stage 2) Snabb's intel_mp alone on the device loops received frames back out: frames this test
 *      sends into the NIC's socket come back (RX, TX, link, counters)
 *
 * Needs the Snabb source (for intel_mp.lua), as scripts/build-snabb.sh finds it.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { innerGuestImagePath, pciTestHostImagePath, repoRoot, whyNoVmTests } from './helpers/fixtures.js';
import { startLauncher } from './helpers/launcher.js';
import { PingResponder, type WireCounts } from './helpers/ping-responder.js';
import { waitUntil } from './helpers/wait-until.js';

const SNABB = '/usr/local/bin/snabb';
const SNABB_TARBALL = path.join(process.env.SNABB_VENDOR_DIR ?? path.join(repoRoot, '../shared/vendor/snabb'), 'snabb-v2024.06.tar.xz');
const skip =
  whyNoVmTests() ??
  (!existsSync(SNABB) ? `${SNABB} is not installed (run scripts/build-snabb.sh)` : undefined) ??
  (!existsSync(SNABB_TARBALL) ? `no Snabb source at ${SNABB_TARBALL} (SNABB_VENDOR_DIR) for intel_mp.lua` : undefined);
if (skip) console.log(`# SKIPPING the PCI test host: ${skip}`);

const NIC = '0000:00:10.0';
const FRAMES = 20;
/** where the inner guest pings (build-inner-guest.sh), answered by this test */
const RESPONDER_IP = '192.168.82.1';
const RESPONDER_MAC = Buffer.from('020000820001', 'hex');

/** The files the test host mounts: node, the launcher, Snabb and the patched intel_mp, the inner guest, a blank disk. */
function stageFiles(dir: string): void {
  copyFileSync(process.execPath, path.join(dir, 'node'));
  copyFileSync(SNABB, path.join(dir, 'snabb'));
  if (existsSync(`${SNABB}.version`)) copyFileSync(`${SNABB}.version`, path.join(dir, 'snabb.version'));
  for (const f of ['snabb-82574l', 'with-patched-intel-mp.lua', 'loopback.lua', 'inside-test-host.sh']) {
    copyFileSync(path.join(repoRoot, 'test/pci', f), path.join(dir, f));
  }
  const src = execFileSync('tar', ['-xJOf', SNABB_TARBALL, 'snabb-v2024.06/src/apps/intel_mp/intel_mp.lua']);
  writeFileSync(path.join(dir, 'intel_mp.lua'), src);
  execFileSync('patch', ['--batch', '--quiet', path.join(dir, 'intel_mp.lua'), path.join(repoRoot, 'test/pci/intel_mp-82574l.patch')]);
  mkdirSync(path.join(dir, 'app'));
  cpSync(path.join(repoRoot, 'dist'), path.join(dir, 'app/dist'), { recursive: true });
  cpSync(path.join(repoRoot, 'node_modules'), path.join(dir, 'app/node_modules'), { recursive: true, dereference: true });
  copyFileSync(path.join(repoRoot, 'package.json'), path.join(dir, 'app/package.json'));
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', path.join(dir, 'blank.qcow2'), '64M']);
  copyFileSync(innerGuestImagePath(), path.join(dir, 'inner-guest.qcow2'));
}

/** A UDP port nobody uses now, for QEMU's end of the NIC's socket. */
async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
  const { port } = s.address();
  s.close();
  return port;
}

/** One Ethernet frame: broadcast, a local source MAC, an experimental EtherType, a tagged payload. */
function frame(n: number): Buffer {
  const payload = Buffer.from(`snabbvm-pci-${n}`.padEnd(46, '.'));
  return Buffer.concat([Buffer.from('ffffffffffff02000000aa0188b5', 'hex'), payload]);
}

const USER_DATA = `#cloud-config
ssh_genkeytypes: []
runcmd:
  - [sh, -c, "modprobe 9pnet_virtio; mkdir -p /mnt/pci && mount -t 9p -o trans=virtio,version=9p2000.L,ro pci /mnt/pci && mkdir -p /mnt/report && mount -t 9p -o trans=virtio,version=9p2000.L report /mnt/report && bash /mnt/pci/inside-test-host.sh /mnt/pci /mnt/report || echo PCITEST could-not-start >/dev/ttyS0"]
`;

describe('the PCI test host', { skip }, () => {
  const work = mkdtempSync(path.join(tmpdir(), 'snabbvm-pci-host-'));
  let wire: Socket | undefined;
  const reportDir = path.join(work, 'report'); // the test host's report.log and inner-console.log
  const readReport = (name: string) => (existsSync(path.join(reportDir, name)) ? readFileSync(path.join(reportDir, name), 'latin1') : '');
  let nicPort = 0; // where QEMU takes frames for the NIC: set before anything is sent
  const responder = new PingResponder(RESPONDER_IP, RESPONDER_MAC, (f) => wire!.send(f, nicPort, '127.0.0.1'));
  let passed = false;
  after(() => {
    // what the test host reported, for the log (and a failure's why): its lines, the end of the inner guest's
    // console, and after a failure the wire's last frames
    const lines = readReport('report.log').split('\n').filter((l) => l !== '');
    const console40 = readReport('inner-console.log').split('\n').filter((l) => l !== '').slice(-40);
    console.log([...lines, ...console40.map((l) => `PCITEST inner-console ${l}`)].map((l) => `# ${l}`).join('\n'));
    if (!passed && responder.counts.received > 0) {
      console.log(`# the wire: ${JSON.stringify(responder.counts)}; its last frames (ms since the responder started):`);
      console.log(responder.timeline.map((l) => `#   ${l}`).join('\n'));
    }
    wire?.close();
    rmSync(work, { recursive: true, force: true });
  });

  test('the launcher on an emulated 82574L: checks on real sysfs, Snabb unbinds and drives it, the kernel gets it back', { timeout: 1_800_000 }, async () => {

    const started = Date.now();
    const image = pciTestHostImagePath();
    const stage = path.join(work, 'stage');
    mkdirSync(stage);
    mkdirSync(reportDir);
    stageFiles(stage);
    writeFileSync(path.join(work, 'user-data'), USER_DATA);

    // the wire: QEMU sends the NIC's frames to `wire`, and takes frames for it at nicPort
    wire = createSocket('udp4');
    const echoed = new Set<string>();
    nicPort = await freeUdpPort();
    wire.on('message', (msg) => {
      const m = /snabbvm-pci-(\d+)/.exec(msg.toString('latin1'));
      if (m) echoed.add(m[1]!);
      else responder.receive(msg);
    });
    await new Promise<void>((resolve) => wire!.bind(0, '127.0.0.1', resolve));
    const qemuArgs = [
      '-device', `e1000e,netdev=pcinic,addr=0x10,mac=52:54:00:82:57:4c`,
      '-netdev', `socket,id=pcinic,udp=127.0.0.1:${wire.address().port},localaddr=127.0.0.1:${nicPort}`,
      '-virtfs', `local,path=${stage},mount_tag=pci,security_model=none,readonly=on`,
      '-virtfs', `local,path=${reportDir},mount_tag=report,security_model=none`,
    ].join(' ');

    const runDir = path.join(work, 'run');
    const host = startLauncher(
      ['--accel', 'tcg', '--cpus', '2', '-m', '1536', '--net', 'user', '--vnc', 'none', '--web', 'none', '--console', 'none',
        '--stop-timeout', '30', '--name', 'pci-host', '--run-dir', runDir, '--qemu', path.join(repoRoot, 'test/pci/qemu-test-host'),
        '-u', path.join(work, 'user-data'), image],
      { env: { SNABBVM_PCI_TEST_HOST_QEMU_ARGS: qemuArgs } },
    );
    const serial = path.join(runDir, 'serial.log');
    const serialLog = () => (existsSync(serial) ? readFileSync(serial, 'latin1').replace(/\r/g, '') : '');
    const report = () => readReport('report.log');
    const line = (what: string) => new RegExp(`^PCITEST ${what}(?: (.*))?$`, 'm').exec(report())?.[1] ?? '';
    const waitLine = (what: string, ms: number) =>
      waitUntil(() => new RegExp(`^PCITEST ${what}\\b`, 'm').test(report()), ms, () => `no "PCITEST ${what}" in the test host's report; its tail:\n${report().slice(-4000)}\n--- its serial console:\n${serialLog().slice(-4000)}\n--- launcher:\n${host.stderr().slice(-2000)}`, 1000);

    // Everything the test host does is waited for first, then checked: one failure still reports the rest.
    await waitUntil(() => /^PCITEST start\b/m.test(report()) || /^PCITEST could-not-start/m.test(serialLog()), 900_000,
      () => `the test host's script never started; its serial console:\n${serialLog().slice(-4000)}\n--- launcher:\n${host.stderr().slice(-2000)}`, 1000);
    const booted = Date.now();
    assert.doesNotMatch(serialLog(), /^PCITEST could-not-start/m, 'the shares mounted and the script ran');
    // Stage 3: after each round of the inner guest's pings, the wire's counts as they are when Snabb's are read
    // (the guest is silent then); the test host waits for ack-N before it goes on
    const wireAt: WireCounts[] = [];
    const roundSeen: number[] = [];
    for (const round of [1, 2]) {
      await waitUntil(() => new RegExp(`^PCITEST (counters-${round}|loopback-start)\\b`, 'm').test(report()) || undefined, 1_200_000, `counters-${round}`, 500).catch(() => undefined);
      wireAt.push({ ...responder.counts });
      roundSeen.push(Date.now());
      writeFileSync(path.join(stage, `ack-${round}`), '');
    }
    await waitLine('loopback-start', 600_000);
    const stage1 = Date.now();
    // Stage 2: once Snabb's driver has the NIC alone, frames in; the same frames should come out
    const ready = await waitUntil(() => /^PCITEST loopback ready (.*)$/m.exec(report())?.[1] ?? (/^PCITEST loopback-end/m.test(report()) ? 'ended' : undefined), 300_000, 'loopback ready', 500);
    if (ready !== 'ended') {
      for (let n = 0; n < FRAMES; n++) {
        wire.send(frame(n), nicPort, '127.0.0.1');
        await new Promise((r) => setTimeout(r, 50));
      }
      await waitUntil(() => echoed.size >= FRAMES || undefined, 20_000, 'echoes', 500).catch(() => undefined);
    }
    await waitLine('done', 300_000);
    const stage2 = [`loopback ${ready}`, `echoed ${echoed.size}/${FRAMES}`, ...(report().match(/^PCITEST loopback (?:counters|link|registers|rxdesc\S*|pci) .*$/gm) ?? [])];
    const secs = (a: number, b: number) => `${Math.round((b - a) / 1000)} s`;
    console.log(`# PCI test host: boot ${secs(started, booted)}, stages 1 and 3 ${secs(booted, stage1)} (inner guest's round 1 at ${secs(booted, roundSeen[0]!)}, round 2 ${secs(roundSeen[0]!, roundSeen[1]!)} later), stage 2 ${secs(stage1, Date.now())}; ${stage2.join('; ')}`);
    console.log(`# wire after round 1: ${JSON.stringify(wireAt[0])}, after round 2: ${JSON.stringify(wireAt[1])}`);
    for (const l of new Set(report().match(/^PCITEST (counters-\d|snabb-killed|inner-guest round \d (burst|reachable|carrier)).*$/gm))) console.log(`# ${l}`);

    // 1. the management NIC
    assert.match(line('nic'), /^id=0x8086:0x10d3 driver=e1000e netdev=eth\d$/, 'an 82574L on e1000e, as QEMU emulates it');
    assert.match(line('mgmt-model'), /exit=3 .*PCI device 0000:00:0\w\.0 is 1af4:\w{4} \(kernel driver virtio-pci\), which snabbnfv cannot serve VM ports on/);
    assert.match(line('mgmt-use'), /exit=4 .*looks like a NIC the host is using \(eth\d has address 10\.0\.2\.15\/24.*or give --force/);

    // 2. the launcher with the 82574L
    const during = line('during');
    assert.match(during, /^driver=none /, 'Snabb unbound the device from e1000e');
    assert.match(during, new RegExp(`snabb-pid=\\d+ snabb-cmdline=.*snabbnfv traffic -k 10 -D 0 ${NIC} `), 'the launcher started Snabb on it');
    assert.match(line('during-launcher'), /PCI device 0000:00:10\.0 is an Intel 82574L \(no VMDq\), which snabbnfv cannot serve VM ports on: used only because --test-pci-model 8086:10d3 says so/);
    assert.match(line('inner-vm'), /^VM 'inner' is running \(tcg/, "QEMU started the inner guest: Snabb serves its vhost-user socket");
    // the inner guest powers off on the launcher's ACPI request: a clean stop
    assert.match(line('launcher-exit'), /^code=0 gave PCI device 0000:00:10\.0 back to the kernel driver e1000e/);
    assert.match(line('inner-guest-last'), /^INNER poweroff$/);
    assert.match(line('after'), /^driver=e1000e netdev=eth\d$/);
    assert.match(line('after-link'), /^carrier=1 Link detected: yes$/, 'the kernel drives the NIC again, link up');

    // 3. the inner guest behind the NIC: two rounds of pings, Snabb killed between them
    const inner = (what: string) => new RegExp(`^PCITEST inner-guest ${what}$`, 'm').exec(report());
    assert.ok(inner(`up nic=eth0 mac=\\S+ addr=192\\.168\\.82\\.2/24 peer=${RESPONDER_IP}`), 'the inner guest (no cloud-init to name it eth1) has the port as its only NIC, eth0');
    const portCounters = (round: number) => {
      const m = /^state=(\w+) pid=(\d+) restarts=(\d+) tx=(\d+) rx=(\d+) rxdrops=(\d+) /.exec(line(`counters-${round}`));
      assert.ok(m, `snabbvm status --json gave the port's counters after round ${round}: "${line(`counters-${round}`)}"`);
      return { state: m[1], pid: Number(m[2]), restarts: Number(m[3]), tx: Number(m[4]), rx: Number(m[5]), rxDrops: Number(m[6]) };
    };
    const innerRounds = [...new Set(report().match(/^PCITEST inner-guest round .*$/gm))]; // round() repeats every line said so far
    for (const round of [1, 2]) {
      assert.ok(inner(`round ${round} burst 10/10 rtt-ms=\\S+`), `round ${round}: all 10 pings answered through the NIC; the inner guest said: ${innerRounds.join('; ')}`);
    }
    const [c1, c2] = [portCounters(1), portCounters(2)];
    const [w1, w2] = [wireAt[0]!, wireAt[1]!];
    assert.ok(w1.echoReplies >= 10 && w1.arpReplies >= 1, `the responder answered ARP and the round's pings: ${JSON.stringify(w1)}`);
    // Snabb's counters are its process's own: round 1 from Snabb's start, round 2 from its restart
    assert.deepEqual({ tx: c1.tx, rx: c1.rx, rxDrops: c1.rxDrops }, { tx: w1.received, rx: w1.sent, rxDrops: 0 }, 'round 1: what the VM sent is what came off the wire, and what the responder sent reached the VM');
    assert.match(line('snabb-killed'), new RegExp(`^pid=${c1.pid}$`));
    assert.ok(inner('round 1 carrier down \\(down count \\d+ -> \\d+\\)') && inner('round 1 carrier up'), `the guest's link went down with Snabb and came back with the restarted one; the inner guest said: ${innerRounds.join('; ')}`);
    assert.equal(c2.state, 'running');
    assert.notEqual(c2.pid, c1.pid, 'a new Snabb');
    assert.equal(c2.restarts, c1.restarts + 1, 'the launcher restarted Snabb once');
    assert.deepEqual({ tx: c2.tx, rx: c2.rx, rxDrops: c2.rxDrops }, { tx: w2.received - w1.received, rx: w2.sent - w1.sent, rxDrops: 0 }, 'round 2, after the restart: the same agreement');

    // 4. Snabb's driver alone
    assert.match(ready, /^link=up /, 'intel_mp brought the link up');
    assert.equal(echoed.size, FRAMES, 'every frame sent into the NIC came back out through intel_mp');
    const counters = /rxpackets=(\d+) txpackets=(\d+) /.exec(line('loopback counters'));
    assert.ok(counters && Number(counters[1]) >= FRAMES && Number(counters[2]) >= FRAMES, `the NIC's own counters saw the frames: ${line('loopback counters')}`);
    assert.match(line('loopback-end'), /^driver=e1000e$/);

    host.child.kill('SIGTERM');
    assert.equal((await host.exited).code, 0);
    passed = true;
  });
});
