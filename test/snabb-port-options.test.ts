/**
 * The launcher's own Snabb with every traffic option on its command line, for real: real patched Snabb, real QEMU
 * (TCG), the real cloud image, and traffic between two guests.
 *
 *   VM A eth1 10.67.1.1 ── launcher A's Snabb (soft,peer=link.sock,vlan=42,ingress=not icmp,
 *                            egress=not udp port 9999,rx_police=0.005,tx_police=0.005) ── link.sock ── VM B eth1
 *   VM B: eth1 is a trunk; eth1.42 10.67.1.2; tcpdump on eth1, iperf3 server, a UDP counter on ports 9998 and 9999
 *
 * A's script, once B answers: ping (ICMP replies are dropped on the way in), ten UDP datagrams each to ports 9999
 * (dropped on the way out) and 9998, iperf3 UDP at 20 Mbit/s both ways (policed at 5 Mbit/s each way), then its
 * eth1 counters. B reports what reached it (A knows B is up when B's port 7000 answers). The test compares it all with `snabbvm status --json` of launcher A.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, describe, test } from 'node:test';
import { cloudImagePath, whyNoVmTests } from './helpers/fixtures.js';
import { launcherPath, processesMatching, startLauncher, type LauncherRun } from './helpers/launcher.js';
import { serial, waitForSerial } from './helpers/serial-log.js';

const SNABB = '/usr/local/bin/snabb';
const skip = whyNoVmTests() ?? (existsSync(SNABB) ? undefined : `${SNABB} is not installed (run scripts/build-snabb.sh; see docs/snabb.md)`);
if (skip) console.log(`# SKIPPING the Snabb port options test: ${skip}`);

const BOOT_MS = 900_000;
/** both policers, in Gbit/s as the port spec takes them, and what iperf3 offers (5 Mbit/s and 20 Mbit/s) */
const POLICE_GBPS = 0.005;
const OFFERED_BPS = 20e6;
const PORT = `vlan=42,ingress=not icmp,egress=not udp port 9999,rx_police=${POLICE_GBPS},tx_police=${POLICE_GBPS}`;

const USER_DATA_A = `#cloud-config
ssh_genkeytypes: []
write_files:
  - path: /usr/local/bin/traffic
    permissions: '0755'
    content: |
      #!/bin/sh
      say() { echo "$*" > /dev/ttyS0; }
      stat() { cat /sys/class/net/eth1/statistics/$1; }
      sysctl -qw net.ipv6.conf.eth1.disable_ipv6=1
      until nc -z -w 2 10.67.1.2 7000; do sleep 1; done
      say "A-REACHED-B"
      say "A-PING $(ping -c 3 -W 2 10.67.1.2 | grep -o '[0-9]* received') END"
      python3 -c 'import socket,time
      s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)
      for i in range(10):
          s.sendto(b"x",("10.67.1.2",9999)); s.sendto(b"x",("10.67.1.2",9998)); time.sleep(0.05)'
      for dir in tx rx; do
        [ $dir = rx ] && r=-R || r=
        iperf3 -c 10.67.1.2 -u -b ${OFFERED_BPS} -t 8 $r -J > /tmp/$dir.json
        python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["end"]; print("A-IPERF", sys.argv[2], int(e["sum_sent"]["bits_per_second"]), int(e["sum_received"]["bits_per_second"]), "END")' /tmp/$dir.json $dir > /dev/ttyS0
        sleep 2
      done
      python3 -c 'import socket; socket.socket(socket.AF_INET,socket.SOCK_DGRAM).sendto(b"DONE",("10.67.1.2",9998))'
      sleep 3
      say "A-STATS $(stat rx_packets) $(stat tx_packets) END"
runcmd:
  - [systemd-run, --unit=traffic, /usr/local/bin/traffic]
`;

const USER_DATA_B = `#cloud-config
ssh_genkeytypes: []
write_files:
  - path: /usr/local/bin/udp-count
    content: |
      import select, socket
      socks = {}
      for port in (9998, 9999):
          s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
          s.bind(("0.0.0.0", port))
          socks[s] = port
      counts = {9998: 0, 9999: 0}
      done = False
      while not done:
          for s in select.select(list(socks), [], [])[0]:
              data = s.recv(2048)
              if data == b"DONE":
                  done = True
              else:
                  counts[socks[s]] += 1
      snmp = [l.split() for l in open("/proc/net/snmp") if l.startswith("Icmp:")]
      echos = dict(zip(snmp[0], snmp[1]))["InEchos"]
      with open("/dev/ttyS0", "w") as tty:
          tty.write("B-GOT udp9998=%d udp9999=%d echos=%s END\\n" % (counts[9998], counts[9999], echos))
  - path: /usr/local/bin/peer
    permissions: '0755'
    content: |
      #!/bin/sh
      sysctl -qw net.ipv6.conf.eth1.disable_ipv6=1
      ip link set eth1 up
      ip link add link eth1 name eth1.42 type vlan id 42
      sysctl -qw net.ipv6.conf.eth1/42.disable_ipv6=1
      ip addr add 10.67.1.2/24 dev eth1.42
      ip link set eth1.42 up
      tcpdump -e -n -l -i eth1 -c 6 2>/dev/null | sed -u 's/^/B-WIRE /' > /dev/ttyS0 &
      python3 /usr/local/bin/udp-count &
      iperf3 -s -D
      nc -lk -p 7000 >/dev/null &
      echo "B-READY" > /dev/ttyS0
      wait
runcmd:
  - [systemd-run, --unit=peer, /usr/local/bin/peer]
`;

interface StatusJson {
  state: string;
  snabb?: { binary: string; version: string; patched?: boolean };
  ports: { name: string; kind: string; state: string; counters?: { txPackets: number; rxPackets: number; rxDrops: number } }[];
}
const statusJson = (runDir: string): StatusJson => JSON.parse(execFileSync(process.execPath, [launcherPath, 'status', '--json', '--run-dir', runDir], { encoding: 'utf8' })) as StatusJson;

describe("the launcher's Snabb port options, with traffic between two VMs", { skip }, () => {
  const work = mkdtempSync(path.join(tmpdir(), 'snabbvm-opts-'));
  const linkSocket = path.join(work, 'link.sock');
  const runA = path.join(work, 'a');
  const runB = path.join(work, 'b');
  let vmA: LauncherRun | undefined;
  let vmB: LauncherRun | undefined;
  let raisedHugepages = 0;

  after(async () => {
    for (const vm of [vmA, vmB]) if (vm && vm.child.exitCode === null && vm.child.signalCode === null) vm.child.kill('SIGTERM');
    await Promise.race([Promise.all([vmA?.exited, vmB?.exited]), sleep(120_000)]);
    for (const vm of [vmA, vmB]) if (vm && vm.child.exitCode === null && vm.child.signalCode === null) vm.child.kill('SIGKILL');
    if (raisedHugepages > 0) writeFileSync('/proc/sys/vm/nr_hugepages', String(Math.max(0, Number(readFileSync('/proc/sys/vm/nr_hugepages', 'utf8')) - raisedHugepages)));
    rmSync(work, { recursive: true, force: true });
  });

  test('vlan=, ingress=/egress= filters and rx_police=/tx_police= on a soft port: the tag on the wire, filtered traffic dropped, the rest passing, iperf3 capped, counters that agree', { timeout: 1_800_000 }, async () => {
    const image = cloudImagePath();
    // A's 256 pages of guest memory and Snabb's own, B's too if it can have them; CI starts with none
    const meminfo = (key: string) => Number(new RegExp(`^HugePages_${key}:\\s+(\\d+)`, 'm').exec(readFileSync('/proc/meminfo', 'utf8'))![1]);
    const want = 2 * 256 + 64;
    const available = meminfo('Free') - meminfo('Rsvd');
    if (available < want) {
      const target = meminfo('Total') + (want - available);
      raisedHugepages = target - Number(readFileSync('/proc/sys/vm/nr_hugepages', 'utf8'));
      writeFileSync('/proc/sys/vm/nr_hugepages', String(target));
    }
    writeFileSync(path.join(work, 'user-data-a'), USER_DATA_A);
    writeFileSync(path.join(work, 'user-data-b'), USER_DATA_B);

    const common = ['--accel', 'tcg', '-m', '512', '--net', 'none', '--vnc', 'none', '--web', 'none', '--console', 'none', '--stop-timeout', '90', '--snabb', SNABB];
    vmA = startLauncher([...common, '--name', 'opts-a', '--run-dir', runA, '-u', path.join(work, 'user-data-a'), image, `soft,peer=${linkSocket},${PORT},ip=10.67.1.1/24`]);
    await vmA.waitFor(/eth1: Snabb \(pid \d+\) serves a software switch/, 120_000);
    vmB = startLauncher([...common, '--name', 'opts-b', '--run-dir', runB, '-u', path.join(work, 'user-data-b'), image, `vhost-user:${linkSocket}`]);
    await Promise.all([vmA.waitFor(/is running/, 180_000), vmB.waitFor(/is running/, 180_000)]);

    // which Snabb runs: the build scripts/build-snabb.sh installed, with our patch
    const running = statusJson(runA);
    const built = readFileSync(`${SNABB}.version`, 'utf8').trim();
    console.log(`# snabbvm status --json: snabb ${JSON.stringify(running.snabb)}`);
    assert.deepEqual(running.snabb, { binary: SNABB, version: built, patched: true });
    assert.match(built, /^v2024\.06\+snabbvm\.[0-9a-f]{12}$/);

    await waitForSerial(runB, /B-READY/, BOOT_MS);
    await waitForSerial(runA, /A-REACHED-B/, BOOT_MS);
    const stats = await waitForSerial(runA, /A-STATS (\d+) (\d+) END/, 600_000);
    const got = await waitForSerial(runB, /B-GOT udp9998=(\d+) udp9999=(\d+) echos=(\d+) END/, 60_000);
    const textA = serial(runA);
    const ping = textA.match(/A-PING (\d+) received END/);
    const iperf = Object.fromEntries([...textA.matchAll(/A-IPERF (tx|rx) (\d+) (\d+) END/g)].map((m) => [m[1]!, { sent: Number(m[2]), received: Number(m[3]) }]));
    const wire = [...serial(runB).matchAll(/B-WIRE ([^\r\n]*)/g)].map((m) => m[1]!);
    console.log(`# B's tcpdump on its trunk eth1:\n${wire.map((l) => `#   ${l}`).join('\n')}`);
    console.log(`# A ping B: ${ping?.[1]} of 3 replies; B got ${got[3]} echo requests, UDP to 9998: ${got[1]} of 10, to 9999: ${got[2]} of 10`);
    console.log(`# iperf3 UDP, offered ${OFFERED_BPS / 1e6} Mbit/s, policed at ${POLICE_GBPS * 1000} Mbit/s: A->B sent ${(iperf.tx?.sent ?? 0) / 1e6} received ${(iperf.tx?.received ?? 0) / 1e6} Mbit/s; B->A sent ${(iperf.rx?.sent ?? 0) / 1e6} received ${(iperf.rx?.received ?? 0) / 1e6} Mbit/s`);

    // the VLAN tag on the wire: every frame on B's trunk carries tag 42, and B answered on eth1.42 only
    assert.ok(wire.length >= 3, `tcpdump saw frames on B's eth1: ${wire.join(' | ')}`);
    for (const frame of wire) assert.match(frame, /ethertype 802\.1Q \(0x8100\), length \d+: vlan 42,/, frame);
    // ingress=not icmp: B answered every echo request, A got no reply; TCP (nc, iperf3's control) and UDP passed
    assert.equal(ping?.[1], '0', 'no ICMP reply reached A');
    assert.ok(Number(got[3]) >= 3, `B got A's echo requests: ${got[3]}`);
    // egress=not udp port 9999: none of those left A, all of port 9998's did
    assert.equal(got[2], '0', 'UDP to port 9999 dropped on the way out of A');
    assert.equal(got[1], '10', 'UDP to port 9998 passed');
    // the policers: what was received stays within 25 % of 5 Mbit/s each way, though far more was offered
    const rate = POLICE_GBPS * 1e9;
    for (const dir of ['tx', 'rx'] as const) {
      const r = iperf[dir];
      assert.ok(r, `iperf3 ${dir} ran`);
      assert.ok(r.sent > 2 * rate, `iperf3 ${dir} offered more than twice the policed rate: ${r.sent} bit/s`);
      assert.ok(Math.abs(r.received - rate) <= 0.25 * rate, `iperf3 ${dir} received ${r.received} bit/s, policed at ${rate}`);
    }

    // status --json agrees with A's own counters (one refresh every 5 s; nothing moves once A is done)
    await sleep(7000);
    const after = statusJson(runA);
    const port = after.ports.find((p) => p.name === 'eth1')!;
    const [guestRx, guestTx] = [Number(stats[1]), Number(stats[2])];
    console.log(`# A's eth1: rx ${guestRx} tx ${guestTx} packets; snabbvm status --json eth1: ${JSON.stringify(port.counters)}`);
    assert.equal(port.kind, 'soft');
    assert.equal(port.state, 'running');
    assert.ok(port.counters, 'status has counters');
    assert.ok(Math.abs(port.counters.txPackets - guestTx) <= 3, `Snabb took what A sent: ${port.counters.txPackets} vs ${guestTx}`);
    assert.ok(Math.abs(port.counters.rxPackets - guestRx) <= 3, `Snabb gave A what it received: ${port.counters.rxPackets} vs ${guestRx}`);

    vmA.child.kill('SIGTERM');
    vmB.child.kill('SIGTERM');
    const [endA, endB] = await Promise.all([vmA.exited, vmB.exited]);
    assert.equal(endA.code, 0, vmA.stderr());
    assert.equal(endB.code, 0, vmB.stderr());
    assert.deepEqual(await processesMatching(work), [], 'no QEMU or Snabb of this test is left');
    assert.deepEqual(readdirSync('/tmp').filter((f) => f.startsWith(`vhost_features_${runA.replace(/\//g, '__')}`)), [], 'no feature cache of launcher A left');
  });
});
