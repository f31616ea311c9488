/**
 * `netdev:` ports as containerlab uses them, without containerlab (it cannot be installed here): two network
 * namespaces stand in for two containers, each runs a launcher with `netdev:eth1` (real QEMU under TCG, the real
 * Debian 12 fixture and cloud-init), and only then is a veth pair made between them and named eth1 on both sides,
 * the way containerlab links nodes after their containers started (create, move, rename, set the MAC, bring up).
 *
 * The guests ping across (addresses from `,ip=`), ping with 9000-byte frames, and send an LLDP frame and a
 * VLAN-tagged frame every 2 s from a raw AF_PACKET socket; tcpdump in the other guest writes what arrives, and a
 * small reader prints those frames in hex on the serial console, where the test compares them byte for byte with
 * what was sent. Afterwards the namespaces are as they were: no tap, no qdisc on eth1.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { cloudImagePath, whyNoVmTests } from './helpers/fixtures.js';
import { runLauncher, startLauncher, type LauncherRun } from './helpers/launcher.js';
import { snapshotNetwork, whyNoNetnsTests } from './helpers/netns.js';
import { waitForSerial } from './helpers/serial-log.js';

const skipNetns = whyNoNetnsTests();
const skipVm = skipNetns ?? whyNoVmTests();
if (skipNetns) console.log(`# SKIPPING netdev port tests: ${skipNetns}`);
else if (skipVm) console.log(`# SKIPPING the netdev VM test: ${skipVm}`);

const BOOT_MS = 900_000;
const run = (argv: string[]) => execFileSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'] });
const MTU = 9000;

/** The guest's side: frames.py prints LLDP and VLAN frames tcpdump captured, or sends them every 2 s. */
const FRAMES_PY = `import os, socket, struct, sys, time
def show(path):
    while not os.path.exists(path):
        time.sleep(0.2)
    f = open(path, 'rb')
    buf = b''
    def need(n):
        nonlocal buf
        while len(buf) < n:
            chunk = f.read(65536)
            if not chunk:
                time.sleep(0.2)
            buf += chunk
        out, buf = buf[:n], buf[n:]
        return out
    need(24)
    tty = open('/dev/ttyS0', 'w')
    while True:
        _, _, incl, _ = struct.unpack('<IIII', need(16))
        data = need(incl)
        if data[12:14] in (b'\\x88\\xcc', b'\\x81\\x00'):
            tty.write('NDFRAME %s\\n' % data.hex())
            tty.flush()
def send():
    mac = bytes.fromhex(open('/sys/class/net/eth1/address').read().strip().replace(':', ''))
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind(('eth1', 0))
    tlv = lambda t, v: struct.pack('!H', (t << 9) | len(v)) + v
    lldp = bytes.fromhex('0180c200000e') + mac + b'\\x88\\xcc' + tlv(1, b'\\x04' + mac) + tlv(2, b'\\x05eth1') + tlv(3, b'\\x00\\x78') + tlv(0, b'')
    vlan = b'\\xff' * 6 + mac + bytes.fromhex('8100002a88b5') + b'snabbvm vlan 42'
    while True:
        s.send(lldp.ljust(60, b'\\x00'))
        s.send(vlan.ljust(60, b'\\x00'))
        time.sleep(2)
show(sys.argv[2]) if sys.argv[1] == 'show' else send()
`;

/** The same frames as frames.py sends, from the sender's MAC, in hex. */
function expectedFrames(mac: string): { lldp: string; vlan: string } {
  const m = Buffer.from(mac.replace(/:/g, ''), 'hex');
  const tlv = (type: number, value: Buffer) => Buffer.concat([Buffer.from([(type << 1) | (value.length >> 8), value.length & 0xff]), value]);
  const pad = (b: Buffer) => Buffer.concat([b, Buffer.alloc(Math.max(0, 60 - b.length))]).toString('hex');
  const lldp = Buffer.concat([Buffer.from('0180c200000e', 'hex'), m, Buffer.from('88cc', 'hex'), tlv(1, Buffer.concat([Buffer.from([4]), m])), tlv(2, Buffer.from('\x05eth1', 'latin1')), tlv(3, Buffer.from([0, 0x78])), tlv(0, Buffer.alloc(0))]);
  const vlan = Buffer.concat([Buffer.alloc(6, 0xff), m, Buffer.from('8100002a88b5', 'hex'), Buffer.from('snabbvm vlan 42')]);
  return { lldp: pad(lldp), vlan: pad(vlan) };
}

function userData(peer: string): string {
  const indent = (text: string) => text.split('\n').map((l) => (l === '' ? '' : `      ${l}`)).join('\n');
  return `#cloud-config
ssh_genkeytypes: []
write_files:
  - path: /usr/local/bin/frames.py
    content: |
${indent(FRAMES_PY)}
  - path: /usr/local/bin/ndcheck
    permissions: '0755'
    content: |
      #!/bin/sh
      say() { echo "$*" > /dev/ttyS0; }
      say "NDINFO mac=$(cat /sys/class/net/eth1/address) mtu=$(cat /sys/class/net/eth1/mtu)"
      tcpdump -i eth1 -U -w /run/cap.pcap 2>/dev/null &
      python3 /usr/local/bin/frames.py show /run/cap.pcap &
      until ping -c1 -W1 ${peer} >/dev/null 2>&1; do sleep 1; done
      say "NDPING ok"
      if ping -c1 -W5 -M do -s ${MTU - 28} ${peer} >/dev/null 2>&1; then say "NDJUMBO ok"; else say "NDJUMBO fail"; fi
      exec python3 /usr/local/bin/frames.py send
runcmd:
  - [systemd-run, --unit=ndcheck, /usr/local/bin/ndcheck]
`;
}

/** SIGTERM, then SIGKILL if it takes too long (its QEMU dies with it). */
async function stopLauncher(vm: LauncherRun | undefined): Promise<void> {
  if (!vm || vm.child.exitCode !== null || vm.child.signalCode !== null) return;
  vm.child.kill('SIGTERM');
  const timer = setTimeout(() => vm.child.kill('SIGKILL'), 150_000);
  await vm.exited;
  clearTimeout(timer);
}

describe('netdev: ports, containerlab-style links in network namespaces', { skip: skipNetns }, () => {
  const work = mkdtempSync(path.join(tmpdir(), 'snabbvm-netdev-'));
  const id = `snabbvm-t${process.pid}-nd`;
  const nsA = `${id}-a`;
  const nsB = `${id}-b`;
  let tinyImage: string;
  let image: string;
  const launchers: LauncherRun[] = [];

  before(() => {
    if (skipVm === undefined) image = cloudImagePath(); // built once, outside the tests' timeouts
    for (const ns of [nsA, nsB]) {
      run(['ip', 'netns', 'add', ns]);
      run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    }
    tinyImage = path.join(work, 'tiny.qcow2');
    run(['qemu-img', 'create', '-q', '-f', 'qcow2', tinyImage, '64M']);
  });
  after(async () => {
    await Promise.all(launchers.map(stopLauncher));
    for (const ns of [nsA, nsB]) {
      try {
        run(['ip', 'netns', 'delete', ns]);
      } catch {}
    }
    rmSync(work, { recursive: true, force: true });
  });

  const quiet = ['--accel', 'tcg', '--net', 'none', '--vnc', 'none', '--web', 'none', '--console', 'none'];
  const wrapper = (ns: string) => ['ip', 'netns', 'exec', ns];

  test('without CAP_NET_ADMIN: one line and exit 4 before anything is made', async () => {
    const before = snapshotNetwork(nsA);
    const runDir = path.join(work, 'nocap');
    const r = await runLauncher([...quiet, '--name', 'nd-nocap', '--run-dir', runDir, tinyImage, 'netdev:eth1'], { wrapper: [...wrapper(nsA), 'setpriv', '--bounding-set', '-net_admin', '--'] });
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /^snabbvm: error: netdev: ports need CAP_NET_ADMIN .*--cap-add NET_ADMIN --device \/dev\/net\/tun\n$/m);
    assert.equal(r.stderr.trim().split('\n').filter((l) => l.includes('error')).length, 1, r.stderr);
    assert.equal(existsSync(runDir), false);
    assert.equal(snapshotNetwork(nsA), before);
  });

  test('an interface that never appears: a progress line, then exit 4 after --netdev-timeout (env), nothing left', async () => {
    const before = snapshotNetwork(nsA);
    const started = Date.now();
    const r = await runLauncher([...quiet, '--name', 'nd-absent', '--run-dir', path.join(work, 'absent'), tinyImage, 'netdev:eth7'], { wrapper: wrapper(nsA), env: { SNABBVM_NETDEV_TIMEOUT: '3' } });
    const took = (Date.now() - started) / 1000;
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /netdev: waiting up to 3 s for eth7 to appear and come up in this container/);
    assert.match(r.stderr, /snabbvm: error: netdev: ports: eth7 does not exist after 3 s; .*--netdev-timeout/);
    assert.ok(took >= 3 && took < 30, `took ${took} s`);
    assert.equal(existsSync(path.join(work, 'absent')), false);
    assert.equal(snapshotNetwork(nsA), before);
  });

  test('a stop signal ends the wait at once', async () => {
    const runDir = path.join(work, 'stopped');
    const vm = startLauncher([...quiet, '--name', 'nd-stopped', '--run-dir', runDir, tinyImage, 'netdev:eth7'], { wrapper: wrapper(nsA) });
    launchers.push(vm);
    await vm.waitFor(/netdev: waiting up to 300 s for eth7/, 30_000);
    const signalled = Date.now();
    vm.child.kill('SIGTERM');
    const end = await vm.exited;
    assert.ok(Date.now() - signalled < 5000, `stopped in ${Date.now() - signalled} ms`);
    assert.equal(end.code, 1, vm.stderr());
    assert.match(vm.stderr(), /stopped before the VM started/);
    assert.equal(existsSync(runDir), false);
  });

  test('a launcher killed with SIGKILL leaves its tap and qdisc; the next launcher of the same VM removes them first', { skip: skipVm, timeout: 120_000 }, async () => {
    // QEMU on a blank disk (the firmware looks for something to boot forever): enough for the tap to be in use
    run(['ip', '-n', nsA, 'link', 'add', 'eth1', 'type', 'veth', 'peer', 'name', 'peer1']);
    run(['ip', '-n', nsA, 'link', 'set', 'eth1', 'up']);
    try {
      const before = snapshotNetwork(nsA);
      const runDir = path.join(work, 'killed');
      const args = [...quiet, '--stop-timeout', '0', '--name', 'nd-killed', '--run-dir', runDir, tinyImage, 'netdev:eth1'];
      const first = startLauncher(args, { wrapper: wrapper(nsA) });
      launchers.push(first);
      await first.waitFor(/is running/, 60_000);
      first.child.kill('SIGKILL');
      await first.exited;
      assert.match(run(['ip', 'netns', 'exec', nsA, 'tc', 'qdisc', 'show', 'dev', 'eth1']), /qdisc ingress/, 'left behind by the killed launcher');
      assert.match(run(['ip', '-n', nsA, 'link', 'show', 'nd1-nd-killed']), /nd1-nd-killed/);

      const second = startLauncher(args, { wrapper: wrapper(nsA) });
      launchers.push(second);
      await second.waitFor(/is running/, 60_000);
      assert.match(second.stderr(), /was killed without cleaning up; taking over/);
      assert.doesNotMatch(second.stderr(), /already has an ingress qdisc/);
      second.child.kill('SIGTERM');
      await second.exited;
      assert.equal(snapshotNetwork(nsA), before, 'no tap, the same links');
      assert.doesNotMatch(run(['ip', 'netns', 'exec', nsA, 'tc', 'qdisc', 'show', 'dev', 'eth1']), /ingress/);
    } finally {
      run(['ip', '-n', nsA, 'link', 'delete', 'eth1']);
    }
  });

  test('two VMs linked after they started: ping, 9000-byte frames, LLDP and VLAN frames unchanged; the namespaces as before', { skip: skipVm, timeout: BOOT_MS + 300_000 }, async () => {
    const before = { a: snapshotNetwork(nsA), b: snapshotNetwork(nsB) };
    const macs = { a: '02:77:00:00:00:0a', b: '02:77:00:00:00:0b' };
    const vms: Record<'a' | 'b', { ns: string; ip: string; peer: string; runDir: string; vm?: LauncherRun }> = {
      a: { ns: nsA, ip: '10.77.0.1', peer: '10.77.0.2', runDir: path.join(work, 'a') },
      b: { ns: nsB, ip: '10.77.0.2', peer: '10.77.0.1', runDir: path.join(work, 'b') },
    };
    const t0 = Date.now();
    const since = () => `${((Date.now() - t0) / 1000).toFixed(1)} s`;
    for (const [side, v] of Object.entries(vms)) {
      writeFileSync(path.join(work, `user-data-${side}`), userData(v.peer));
      v.vm = startLauncher(['--accel', 'tcg', '-m', '512', '--net', 'none', '--vnc', 'none', '--web', 'none', '--console', 'none', '--stop-timeout', '90',
        '--name', `nd-${side}`, '--run-dir', v.runDir, '-u', path.join(work, `user-data-${side}`), image, `netdev:eth1,ip=${v.ip}/24`], { wrapper: wrapper(v.ns) });
      launchers.push(v.vm);
    }
    await Promise.all(Object.values(vms).map((v) => v.vm!.waitFor(/netdev: waiting up to 300 s for eth1/, 120_000)));
    console.log(`# both launchers wait for eth1 at ${since()}`);

    // what containerlab does for a link: a veth pair with the link's MTU, each end moved into its container,
    // renamed, given its MAC, brought up
    const tmp = { a: `nda${process.pid % 100000}`, b: `ndb${process.pid % 100000}` };
    run(['ip', 'link', 'add', tmp.a, 'mtu', String(MTU), 'type', 'veth', 'peer', 'name', tmp.b, 'mtu', String(MTU)]);
    for (const side of ['a', 'b'] as const) {
      const ns = vms[side].ns;
      run(['ip', 'link', 'set', tmp[side], 'netns', ns]);
      run(['ip', '-n', ns, 'link', 'set', tmp[side], 'name', 'eth1']);
      run(['ip', '-n', ns, 'link', 'set', 'eth1', 'address', macs[side]]);
      run(['ip', '-n', ns, 'link', 'set', 'eth1', 'up']);
    }
    const linkBefore = (ns: string) => run(['ip', '-n', ns, '-d', 'link', 'show', 'eth1']).replace(/qdisc \S+ /, '');
    const eth1Before = { a: linkBefore(nsA), b: linkBefore(nsB) };

    for (const side of ['a', 'b'] as const) {
      const vm = vms[side].vm!;
      await vm.waitFor(/netdev:eth1: the interface appeared after [\d.]+ s/, 60_000);
      await vm.waitFor(new RegExp(`eth1: netdev:eth1 through tap nd1-nd-${side} \\(tc redirects both ways; MAC ${macs[side]}, MTU ${MTU}\\)`), 60_000);
      const qdiscs = run(['ip', 'netns', 'exec', vms[side].ns, 'tc', 'qdisc', 'show', 'dev', 'eth1']);
      assert.match(qdiscs, /qdisc ingress ffff:/, 'the ingress qdisc on eth1');
    }
    await Promise.all(Object.values(vms).map((v) => v.vm!.waitFor(/is running/, 180_000)));
    console.log(`# both VMs running at ${since()}`);

    const serialOf = (side: 'a' | 'b') => vms[side].runDir;
    for (const side of ['a', 'b'] as const) {
      const info = await waitForSerial(serialOf(side), /NDINFO mac=(\S+) mtu=(\d+)/, BOOT_MS);
      assert.deepEqual([info[1], info[2]], [macs[side], String(MTU)], "the guest's eth1 has the interface's MAC and MTU");
    }
    for (const side of ['a', 'b'] as const) await waitForSerial(serialOf(side), /NDPING ok/, 300_000);
    console.log(`# ping across at ${since()}`);
    for (const side of ['a', 'b'] as const) assert.equal((await waitForSerial(serialOf(side), /NDJUMBO (\w+)/, 120_000))[1], 'ok', `a ${MTU}-byte ping from ${side} with DF`);
    for (const [to, from] of [['b', 'a'], ['a', 'b']] as const) {
      const want = expectedFrames(macs[from]);
      await waitForSerial(serialOf(to), new RegExp(`NDFRAME ${want.lldp}`), 120_000);
      await waitForSerial(serialOf(to), new RegExp(`NDFRAME ${want.vlan}`), 120_000);
    }
    console.log(`# LLDP and VLAN frames arrived unchanged both ways at ${since()}`);
    await sleep(6000); // a refresh of state.json's ports (every 5 s)
    const stateA = JSON.parse(readFileSync(path.join(vms.a.runDir, 'state.json'), 'utf8')) as { ports: { name: string; kind: string; device: string; tap?: string; state: string; counters?: { txPackets: number; rxPackets: number } }[] };
    const [port] = stateA.ports;
    assert.deepEqual([port?.name, port?.kind, port?.device, port?.tap, port?.state], ['eth1', 'netdev', 'netdev:eth1', 'nd1-nd-a', 'external']);
    assert.ok(port!.counters && port!.counters.txPackets > 0 && port!.counters.rxPackets > 0, `the tap's counters move: ${JSON.stringify(port!.counters)}`);

    for (const v of Object.values(vms)) v.vm!.child.kill('SIGTERM');
    for (const side of ['a', 'b'] as const) {
      const end = await vms[side].vm!.exited;
      assert.equal(end.code, 0, vms[side].vm!.stderr());
      assert.doesNotMatch(vms[side].vm!.stderr(), /cleanup: .* failed/);
    }
    console.log(`# both stopped at ${since()}`);
    for (const side of ['a', 'b'] as const) {
      const ns = vms[side].ns;
      assert.doesNotMatch(run(['ip', 'netns', 'exec', ns, 'tc', 'qdisc', 'show', 'dev', 'eth1']), /ingress/, 'no qdisc left on eth1');
      assert.equal(linkBefore(ns), eth1Before[side], 'eth1 as it was (MAC, MTU, up)');
    }
    run(['ip', '-n', nsA, 'link', 'delete', 'eth1']); // the pair: eth1 in nsB goes with it
    assert.equal(snapshotNetwork(nsA), before.a, 'no tap left; links, addresses, routes, rules as before');
    assert.equal(snapshotNetwork(nsB), before.b);
  });
});
