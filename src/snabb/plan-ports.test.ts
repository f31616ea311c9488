import assert from 'node:assert/strict';
import { test } from 'node:test';
import { macAddress } from '../network/mac-address.js';
import { runtimePaths } from '../paths.js';
import { planPorts } from './plan-ports.js';
import { parsePortSpecs } from './port-spec.js';
import { buildSocketPattern, luaString, renderSnabbConfig } from './render-snabb-config.js';

const paths = runtimePaths('/run/snabbvm/vm1');
const input = { vmName: 'vm1', paths, snabbBinary: 'snabb' };

test('one PCI port: its Snabb config, argv and QEMU NIC', () => {
  const plan = planPorts(parsePortSpecs(['05:00.0,vlan=42,ip=10.1.1.1/24,rx_police=1,tx_police=2,ingress=arp or ip']), input);
  const mac = macAddress('vm1', 1);
  assert.equal(plan.snabb.length, 1);
  const s = plan.snabb[0]!;
  assert.equal(
    s.configText,
    '-- written by snabbvm; Snabb rereads it when it changes\nreturn {\n' +
      `  { port_id = "eth1", mac_address = "${mac}", vlan = 42, ingress_filter = "arp or ip", rx_police = 1, tx_police = 2 },\n}\n`,
  );
  assert.deepEqual(s.argv, ['snabb', 'snabbnfv', 'traffic', '-k', '10', '-D', '0', '0000:05:00.0', '/run/snabbvm/vm1/snabb/eth1.lua', '/run/snabbvm/vm1/snabb/%s.sock']);
  assert.equal(s.logPath, '/run/snabbvm/vm1/snabb/eth1.log');
  assert.deepEqual(plan.nics, [{ kind: 'vhost-user', mac, socket: '/run/snabbvm/vm1/snabb/eth1.sock' }]);
  assert.deepEqual(plan.guestNics, [{ name: 'eth1', mac, dhcp: false, addresses: ['10.1.1.1/24'] }]);
});

test('three ports: two PCI (one pinned) and one external vhost-user socket', () => {
  const plan = planPorts(parsePortSpecs(['0000:05:00.0,mac=52:54:00:00:00:01', '05:00.1,vlan=7,egress=not port 22', 'vhost-user:/run/sw/vm1.sock,ip=dhcp']), {
    ...input,
    cpuFor: (n) => (n === 2 ? 11 : undefined),
  });
  assert.deepEqual(
    plan.snabb.map((s) => [s.nicName, s.device, s.configText.split('\n')[2]]),
    [
      ['eth1', '0000:05:00.0', '  { port_id = "eth1", mac_address = "52:54:00:00:00:01" },'],
      ['eth2', '0000:05:00.1', `  { port_id = "eth2", mac_address = "${macAddress('vm1', 2)}", vlan = 7, egress_filter = "not port 22" },`],
    ],
  );
  assert.deepEqual(plan.snabb[1]!.argv, ['taskset', '-c', '11', 'snabb', 'snabbnfv', 'traffic', '-k', '10', '-D', '0', '0000:05:00.1', '/run/snabbvm/vm1/snabb/eth2.lua', '/run/snabbvm/vm1/snabb/%s.sock']);
  assert.deepEqual(plan.nics.map((n) => (n as { socket: string }).socket), ['/run/snabbvm/vm1/snabb/eth1.sock', '/run/snabbvm/vm1/snabb/eth2.sock', '/run/sw/vm1.sock']);
  assert.deepEqual(plan.externalSockets, [{ nicIndex: 3, socket: '/run/sw/vm1.sock' }]);
  assert.deepEqual(plan.guestNics.map((g) => [g.name, g.dhcp]), [['eth1', false], ['eth2', false], ['eth3', true]]);
});

test('a soft port: a software switch between the VM and its peer socket, reached through a symlink', () => {
  const plan = planPorts(parsePortSpecs(['soft,peer=/run/vm2/sw.sock,vlan=5']), input);
  const s = plan.snabb[0]!;
  assert.equal(s.device, 'soft');
  assert.match(s.configText, /\{ port_id = "eth1", mac_address = "[0-9a-f:]+", vlan = 5 \},\n {2}\{ port_id = "eth1_peer" \},/);
  assert.deepEqual(s.symlinks, [{ path: '/run/snabbvm/vm1/snabb/eth1_peer.sock', target: '/run/vm2/sw.sock' }]);
  assert.equal(s.argv[7], 'soft');
});

test('Lua strings: quotes, backslashes, newlines and ]] cannot break out', () => {
  assert.equal(luaString('a"b\\c\nd]]e'), '"a\\"b\\\\c\\010d]]e"');
  assert.equal(luaString('é'), '"\\195\\169"');
  const text = renderSnabbConfig([{ portId: 'eth1', ingress: '"}, os.execute("rm -rf /") --\n' }]);
  assert.equal(text.split('\n').length, 5, 'the filter adds no line');
  assert.match(text, /ingress_filter = "\\"}, os.execute\(\\"rm -rf \/\\"\) --\\010"/);
  assert.throws(() => renderSnabbConfig([{ portId: 'eth1"' }]), /port_id/);
});

test("the socket pattern doubles a '%' in the folder (Snabb fills it with string.format)", () => {
  assert.equal(buildSocketPattern('/run/snabbvm/a%b/snabb'), '/run/snabbvm/a%%b/snabb/%s.sock');
});
