/**
 * The PCI path without hardware: the checks against a sysfs tree the test builds (--sysfs-root), the lock that
 * keeps two launchers off one device, giving the NIC back to its driver; and the launcher's answer to bad ports
 * (one line each, exit 3 or 4, nothing left). With Snabb installed, also: the rendered config read back by
 * Snabb's own Lua, and pcap filters checked by Snabb's pflua.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { CleanupStack } from '../src/lifecycle/cleanup-stack.js';
import { checkPcapFilters } from '../src/snabb/check-filters.js';
import { claimPciDevice, rebindKernelDriver } from '../src/snabb/claim-pci-device.js';
import { probeHugepages } from '../src/snabb/hugepages.js';
import { probeNodeCpus, probeNumaNodes, probePciDevice, validatePciDevice } from '../src/snabb/pci-device.js';
import { renderSnabbConfig } from '../src/snabb/render-snabb-config.js';
import { removeLeftovers } from '../src/snabb/supervise-snabb.js';
import { runLauncher } from './helpers/launcher.js';
import { buildSysfsTree } from './helpers/sysfs-tree.js';

// SNABBVM_TEST_SNABB=/nonexistent runs these tests as on a machine without Snabb
const SNABB = process.env.SNABBVM_TEST_SNABB ?? '/usr/local/bin/snabb';
const noSnabb = existsSync(SNABB) ? undefined : `${SNABB} is not installed (run scripts/build-snabb.sh; see docs/snabb.md)`;
if (noSnabb) console.log(`# SKIPPING the Snabb parts: ${noSnabb}`);

const sysfs = buildSysfsTree({
  pci: [
    { address: '0000:05:00.0', device: '0x10fb', driver: 'ixgbe', numaNode: 1 },
    { address: '0000:05:00.1', device: '0x10fb', driver: 'ixgbe', netdevs: ['eno1'] },
    { address: '0000:06:00.0', device: '0x1521', driver: 'igb' },
    { address: '0000:07:00.0', device: '0x1572', driver: 'i40e' },
    { address: '0000:08:00.0', vendor: '0x10ec', device: '0x8168', driver: 'r8169' },
    { address: '0000:00:03.0', vendor: '0x1af4', device: '0x1000', driver: 'virtio-pci', virtioNetdevs: ['eth0'] },
  ],
  hugepages: { nr: 60, free: 50, resv: 10, surplus: 4 },
  nodes: [{ cpulist: '0-3' }, { cpulist: '4-7', nr: 32, free: 20 }],
});
const noKernelUse = new Map<string, string[]>();

describe('PCI checks against a sysfs tree', () => {
  test('an 82599 bound to ixgbe: accepted, with its driver and NUMA node remembered', () => {
    const facts = probePciDevice(sysfs, '0000:05:00.0');
    assert.deepEqual(facts, { address: '0000:05:00.0', exists: true, vendor: '0x8086', device: '0x10fb', kernelDriver: 'ixgbe', netdevs: [], numaNode: 1 });
    const r = validatePciDevice(facts, noKernelUse, false, sysfs);
    assert.deepEqual(r.problems, []);
    // in a container the device's interface is in the host's namespace: say what can't be checked
    assert.match(r.warnings.join('\n'), /bound to the kernel driver ixgbe, but its interface is not in this network namespace/);
  });

  test('a missing device: exit 3, saying how to list NICs', () => {
    const r = validatePciDevice(probePciDevice(sysfs, '0000:09:00.0'), noKernelUse, false, sysfs);
    assert.equal(r.problems.length, 1);
    assert.equal(r.problems[0]!.exitCode, 3);
    assert.match(r.problems[0]!.message, /^PCI device 0000:09:00.0 does not exist \(no .*\/bus\/pci\/devices\/0000:09:00.0\); list the host's NICs with: lspci -D -nn \| grep -i ethernet$/);
  });

  test('not an 82599: an X710 and a Realtek are refused (exit 3); an i350 is accepted with a warning', () => {
    const x710 = validatePciDevice(probePciDevice(sysfs, '0000:07:00.0'), noKernelUse, false, sysfs);
    assert.match(x710.problems[0]!.message, /0000:07:00.0 is an Intel X710 \(no Snabb driver for snabbnfv\), which snabbnfv cannot serve VM ports on; use an Intel 82599 \(8086:10fb/);
    const realtek = validatePciDevice(probePciDevice(sysfs, '0000:08:00.0'), noKernelUse, false, sysfs);
    assert.match(realtek.problems[0]!.message, /0000:08:00.0 is 10ec:8168 \(kernel driver r8169\), which snabbnfv cannot serve/);
    assert.equal(realtek.problems[0]!.exitCode, 3);
    const i350 = validatePciDevice(probePciDevice(sysfs, '0000:06:00.0'), noKernelUse, false, sysfs);
    assert.deepEqual(i350.problems, []);
    assert.match(i350.warnings[0]!, /is an Intel i350 \(8086:1521\), a 1 GbE NIC/);
  });

  test('--test-pci-model lets a refused model through, with a warning that names the option; other models stay refused', () => {
    const realtek = probePciDevice(sysfs, '0000:08:00.0');
    const accepted = validatePciDevice(realtek, noKernelUse, false, sysfs, ['10ec:8168']);
    assert.deepEqual(accepted.problems, []);
    assert.match(accepted.warnings[0]!, /0000:08:00.0 is 10ec:8168 \(kernel driver r8169\), which snabbnfv cannot serve VM ports on: used only because --test-pci-model 10ec:8168 says so/);
    assert.equal(validatePciDevice(probePciDevice(sysfs, '0000:07:00.0'), noKernelUse, false, sysfs, ['10ec:8168']).problems[0]!.exitCode, 3);
  });

  test("a virtio NIC's interface, under virtio0/net, counts for the management NIC check", () => {
    const facts = probePciDevice(sysfs, '0000:00:03.0');
    assert.deepEqual(facts.netdevs, ['eth0']);
    const use = new Map([['eth0', ['address 10.0.2.15/24']]]);
    assert.equal(validatePciDevice(facts, use, false, sysfs, ['1af4:1000']).problems[0]!.exitCode, 4);
  });

  test("the host's management NIC (addresses, routes) is refused with exit 4 unless --force", () => {
    const facts = probePciDevice(sysfs, '0000:05:00.1');
    assert.deepEqual(facts.netdevs, ['eno1']);
    const use = new Map([['eno1', ['address 10.0.0.5/24', 'route default via 10.0.0.1']]]);
    const refused = validatePciDevice(facts, use, false, sysfs);
    assert.equal(refused.problems[0]!.exitCode, 4);
    assert.match(refused.problems[0]!.message, /looks like a NIC the host is using \(eno1 has address 10.0.0.5\/24; eno1 has route default via 10.0.0.1\).*or give --force/);
    const forced = validatePciDevice(facts, use, true, sysfs);
    assert.deepEqual(forced.problems, []);
    assert.match(forced.warnings[0]!, /using it anyway \(--force\)/);
    // an interface that is up but has nothing on it is fine
    assert.deepEqual(validatePciDevice(facts, noKernelUse, false, sysfs).problems, []);
  });

  test('a device claimed by another live snabbvm is refused (exit 4); a stale claim is taken over; the claim goes at teardown', async () => {
    const lockDir = mkdtempSync(path.join(tmpdir(), 'snabbvm-pci-locks-'));
    const other = spawn('sleep', ['60']);
    try {
      writeFileSync(path.join(lockDir, '0000:05:00.0.lock'), JSON.stringify({ pid: other.pid, name: 'vm-a' }));
      assert.throws(
        () => claimPciDevice('0000:05:00.0', 'vm-b', lockDir, new CleanupStack()),
        (e: Error & { exitCode?: number }) => e.exitCode === 4 && /PCI device 0000:05:00.0 is already used by the snabbvm VM 'vm-a' \(launcher pid \d+\)/.test(e.message),
      );
    } finally {
      other.kill();
    }
    await new Promise((r) => other.once('exit', r));
    const cleanup = new CleanupStack();
    claimPciDevice('0000:05:00.0', 'vm-b', lockDir, cleanup);
    assert.deepEqual(JSON.parse(readFileSync(path.join(lockDir, '0000:05:00.0.lock'), 'utf8')), { pid: process.pid, name: 'vm-b' });
    await cleanup.unwind();
    assert.deepEqual(readdirSync(lockDir), []);
  });

  test('at exit the NIC goes back to the kernel driver it had', () => {
    const tree = buildSysfsTree({ pci: [{ address: '0000:05:00.0', driver: 'ixgbe' }] });
    const facts = probePciDevice(tree, '0000:05:00.0');
    unlinkSync(path.join(tree, 'bus/pci/devices/0000:05:00.0/driver')); // what Snabb does when it takes the NIC
    rebindKernelDriver(tree, '0000:05:00.0', facts.kernelDriver!);
    assert.equal(readFileSync(path.join(tree, 'bus/pci/drivers/ixgbe/bind'), 'utf8'), '0000:05:00.0');
  });

  test("what a Snabb killed with its [snabb sup] leaves (shared memory, DMA huge page files) is removed", async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'snabbvm-shm-'));
    const dma = path.join(root, 'hugetlbfs/00023bc00000.dma');
    mkdirSync(path.dirname(dma));
    writeFileSync(dma, '');
    mkdirSync(path.join(root, '4242/group/dma'), { recursive: true });
    symlinkSync(dma, path.join(root, '4242/group/dma/00023bc00000.dma'));
    await removeLeftovers(4242, root);
    assert.equal(existsSync(path.join(root, '4242')), false);
    assert.equal(existsSync(dma), false);
    rmSync(root, { recursive: true });
  });

  test('hugepage pool and NUMA nodes are read from sysfs', () => {
    assert.deepEqual(probeHugepages(sysfs), { nr: 64, available: 40 });
    assert.deepEqual(probeHugepages(sysfs, 1), { nr: 64, available: 40, node: { node: 1, nr: 32, free: 20 } });
    assert.equal(probeHugepages(buildSysfsTree({})), undefined);
    assert.deepEqual(probeNumaNodes(sysfs), [0, 1]);
    assert.deepEqual(probeNodeCpus(sysfs, 1), [4, 5, 6, 7]);
  });
});

describe('bad ports at the launcher: one line each, exit 3 or 4, nothing left', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'snabbvm-snabb-bad-'));
  let image = '';
  const noQemuImg = (() => {
    try {
      image = path.join(dir, 'disk.qcow2');
      execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', image, '64M']);
      return undefined;
    } catch {
      return 'qemu-img is not installed';
    }
  })();
  const tree = buildSysfsTree({
    pci: [
      { address: '0000:05:00.0', device: '0x10fb' },
      { address: '0000:07:00.0', device: '0x1572', driver: 'i40e' },
    ],
    hugepages: { nr: 100, free: 30 },
  });
  // Past parsing, every check of the ports is collected before any is reported, Snabb's presence among them: so
  // without Snabb, a case that gets that far prints one more line, "Snabb (...) is not installed" (exit 4), last.
  const snabbMissingLine = new RegExp(`Snabb \\(${SNABB.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\\) is not installed; the snabbvm image has it`);
  const cases: { what: string; ports: string[]; code: number; lines: RegExp[]; reachesSnabbCheck?: boolean; skip?: string | undefined }[] = [
    { what: 'a malformed address', ports: ['05:00'], code: 3, lines: [/port 1 '05:00': '05:00' is not a PCI address/] },
    { what: 'an unknown key', ports: ['05:00.0,vlan=3,speed=10'], code: 3, lines: [/unknown key 'speed'; valid keys for a pci port: vlan, mac, ip, rx_police, tx_police, ingress, egress/] },
    { what: 'a duplicate', ports: ['05:00.0', '0000:05:00.0,vlan=3'], code: 3, lines: [/PCI address 0000:05:00.0 is given twice/] },
    { what: 'a missing device', ports: ['0000:09:00.0'], code: 3, lines: [/PCI device 0000:09:00.0 does not exist/], reachesSnabbCheck: true },
    { what: 'a non-82599 device', ports: ['07:00.0'], code: 3, lines: [/PCI device 0000:07:00.0 is an Intel X710/], reachesSnabbCheck: true },
    {
      what: 'a missing and a non-82599 device: both reported',
      ports: ['0000:09:00.0', '07:00.0'],
      code: 3,
      lines: [/PCI device 0000:09:00.0 does not exist/, /PCI device 0000:07:00.0 is an Intel X710/],
      reachesSnabbCheck: true,
    },
    {
      what: 'a bad pcap filter',
      ports: ['05:00.0,ingress=icmp and foo bar'],
      code: 3,
      lines: [/port 1 ingress: 'icmp and foo bar' is not a valid pcap filter: foo is not a recognized keyword/],
      skip: noSnabb,
    },
    {
      what: 'too few hugepages',
      ports: ['05:00.0'],
      code: 4,
      lines: [/too few 2 MiB huge pages: the VM needs \d+ \(128 for 256 MiB of guest memory \+ \d+ for Snabb's packet buffers\), 30 are free, \d+ missing. Reserve them on the host now with: sysctl vm.nr_hugepages=\d+; or at every boot with the kernel option hugepages=\d+/],
      skip: noSnabb,
    },
  ];
  for (const c of cases) {
    test(c.what, { skip: noQemuImg ?? c.skip }, async () => {
      const runDir = path.join(dir, 'run');
      const r = await runLauncher(['--accel', 'tcg', '--net', 'none', '--vnc', 'none', '--web', 'none', '--console', 'none', '-m', '256', '--sysfs-root', tree, '--snabb', SNABB, '--run-dir', runDir, image, ...c.ports]);
      assert.equal(r.code, c.code, r.stderr);
      const expected = c.reachesSnabbCheck && noSnabb ? [...c.lines, snabbMissingLine] : c.lines;
      // the start's progress lines (the KVM fallback, the firmware chosen) may come before the error
      const lines = r.stderr.trim().split('\n').filter((l) => !/^snabbvm: (warning: KVM|firmware: )/.test(l));
      assert.equal(lines.length, expected.length, r.stderr);
      expected.forEach((re, i) => {
        assert.match(lines[i]!, /^snabbvm: error: /);
        assert.match(lines[i]!, re);
      });
      assert.equal(existsSync(runDir), false, 'no run folder left');
    });
  }
  test('clean up', () => rmSync(dir, { recursive: true, force: true }));
});

describe('with the real Snabb', { skip: noSnabb }, () => {
  test("Snabb's Lua reads back a hostile filter exactly, and nothing else", () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'snabbvm-lua-'));
    const hostile = 'ip and "x" ]] ]==] \\" \n os.exit(7) -- é \0';
    const file = path.join(dir, 'eth1.lua');
    writeFileSync(file, renderSnabbConfig([{ portId: 'eth1', ingress: hostile, vlan: 3 }]));
    const out = execFileSync(SNABB, ['snsh', '-e', `local t = dofile(${JSON.stringify(file)}); io.write(#t, "|", t[1].vlan, "|", t[1].ingress_filter)`]);
    assert.equal(out.toString('utf8'), `1|3|${hostile}`);
    rmSync(dir, { recursive: true });
  });

  test('pflua accepts good filters and explains bad ones', async () => {
    const problems = await checkPcapFilters(SNABB, [
      { where: 'port 1 ingress', expression: 'not icmp' },
      { where: 'port 1 egress', expression: 'tcp port 80 or' },
      { where: 'port 2 ingress', expression: 'ether host 52:54:00:00:00:01 or arp' },
      // pflua is not libpcap: some keywords are missing
      { where: 'port 3 ingress', expression: 'vlan 5' },
    ]);
    assert.deepEqual(
      problems.map((p) => p.message),
      [
        "port 1 egress: 'tcp port 80 or' is not a valid pcap filter: unexpected end of filter string",
        "port 3 ingress: 'vlan 5' is not a valid pcap filter: not implemented: vlan",
      ],
    );
  });
});
