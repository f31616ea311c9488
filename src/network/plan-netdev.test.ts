import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildQemuArgv } from '../qemu/build-qemu-argv.js';
import { planPorts } from '../snabb/plan-ports.js';
import { parsePortSpecs } from '../snabb/port-spec.js';
import { runtimePaths } from '../paths.js';
import { netdevTapName } from './interface-names.js';
import { parseIngressQdisc, parseNetdevLink, planNetdevPort } from './plan-netdev.js';

const link = { name: 'eth1', mac: 'aa:c1:ab:12:34:56', mtu: 9500, up: true };

test('netdev plan: a tap with the interface MTU, a u32 match-all mirred redirect each way, and only an ingress qdisc on the interface', () => {
  const plan = planNetdevPort({ nicName: 'eth1', link, tap: 'nd1-r1', addresses: ['10.77.0.1/24'] });
  assert.deepEqual(plan.tapSteps.map((s) => [s.argv.join(' '), s.undo?.join(' ')]), [
    ['ip tuntap add dev nd1-r1 mode tap', 'ip link delete nd1-r1'],
    ['ip link set dev nd1-r1 mtu 9500 up', undefined],
    ['tc qdisc add dev nd1-r1 ingress', undefined],
    ['tc filter add dev nd1-r1 parent ffff: protocol all u32 match u8 0 0 action mirred egress redirect dev eth1', undefined],
  ]);
  assert.equal(plan.interfaceQdisc.argv.join(' '), 'tc qdisc add dev eth1 ingress');
  assert.equal(plan.interfaceQdisc.undo.join(' '), 'tc qdisc del dev eth1 ingress');
  assert.equal(plan.interfaceRedirect.argv.join(' '), 'tc filter add dev eth1 parent ffff: protocol all u32 match u8 0 0 action mirred egress redirect dev nd1-r1');
  assert.deepEqual(plan.nic, { kind: 'tap', mac: 'aa:c1:ab:12:34:56', ifname: 'nd1-r1', mtu: 9500 });
  assert.deepEqual(plan.guestNic, { name: 'eth1', mac: 'aa:c1:ab:12:34:56', dhcp: false, addresses: ['10.77.0.1/24'], mtu: 9500 });
});

test('netdev plan: mac= overrides the interface MAC; MTU 1500 is not written into network-config; dhcp', () => {
  const plan = planNetdevPort({ nicName: 'eth2', link: { ...link, mtu: 1500 }, tap: 't', mac: '02:00:00:00:00:01', addresses: ['dhcp'] });
  assert.deepEqual(plan.guestNic, { name: 'eth2', mac: '02:00:00:00:00:01', dhcp: true, addresses: [] });
  assert.equal((plan.nic as { mac: string }).mac, '02:00:00:00:00:01');
});

test('netdev tap names fit in 15 characters and differ per VM and NIC', () => {
  assert.equal(netdevTapName('r1', 1), 'nd1-r1');
  const long = netdevTapName('a-very-long-vm-name', 12);
  assert.ok(long.length <= 15 && long.startsWith('nd12-'), long);
  assert.notEqual(netdevTapName('a-very-long-vm-name', 12), netdevTapName('a-very-long-vm-nameX', 12));
});

test('netdev ports in planPorts and the QEMU argv: a tap NIC with host_mtu, no Snabb, between other ports', () => {
  const paths = runtimePaths('/run/snabbvm/r1');
  const specs = parsePortSpecs(['netdev:eth1,ip=10.77.0.1/24', 'vhost-user:/run/sw/a.sock']);
  const plan = planPorts(specs, { vmName: 'r1', paths, snabbBinary: 'snabb', netdevLinks: new Map([['eth1', link]]) });
  assert.equal(plan.snabb.length, 0);
  assert.equal(plan.netdevs.length, 1);
  assert.deepEqual(plan.guestNics.map((n) => [n.name, n.mac]), [['eth1', link.mac], ['eth2', plan.guestNics[1]!.mac]]);
  const argv = buildQemuArgv({ binary: 'qemu', name: 'r1', accel: 'tcg', cpus: 1, memoryMiB: 512, memory: { kind: 'memfd' }, disk: '/d.qcow2', nics: plan.nics, paths, vhostUserWithoutMsix: false }).join(' ');
  assert.match(argv, /-netdev tap,id=net0,ifname=nd1-r1,script=no,downscript=no -device virtio-net-pci,netdev=net0,mac=aa:c1:ab:12:34:56,host_mtu=9500 /);
  assert.throws(() => planPorts(specs, { vmName: 'r1', paths, snabbBinary: 'snabb' }), /no facts for interface eth1/);
});

test('parsing ip -j link and tc -j qdisc', () => {
  const ipJson = '[{"ifindex":3,"link":"vx2","ifname":"eth1","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":9500,"qdisc":"noqueue","operstate":"UP","address":"AA:C1:AB:12:34:56"}]';
  assert.deepEqual(parseNetdevLink(ipJson), link);
  assert.equal(parseNetdevLink(ipJson.replace('"UP",', '')).up, false);
  assert.equal(parseIngressQdisc('[{"kind":"noqueue","handle":"0:","root":true}]'), undefined);
  assert.equal(parseIngressQdisc('[{"kind":"noqueue"},{"kind":"ingress","handle":"ffff:","parent":"ffff:fff1"}]'), 'ingress');
  assert.equal(parseIngressQdisc('[{"kind":"clsact"}]'), 'clsact');
  assert.equal(parseIngressQdisc(''), undefined);
});
