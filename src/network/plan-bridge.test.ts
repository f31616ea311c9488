import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ContainerNetwork } from './container-network.js';
import { macAddress } from './mac-address.js';
import { planBridge } from './plan-bridge.js';

const container: ContainerNetwork = {
  links: [
    {
      name: 'eth0', mac: '02:42:ac:11:00:02', mtu: 1500,
      addresses: [
        { family: 'inet', local: '172.17.0.2', prefixlen: 16, scope: 'global', broadcast: '172.17.255.255', label: 'eth0', flags: [], dynamic: false },
        { family: 'inet', local: '172.17.0.9', prefixlen: 16, scope: 'global', label: 'eth0:1', flags: [], dynamic: false },
        { family: 'inet6', local: 'fd00::2', prefixlen: 64, scope: 'global', flags: ['nodad'], dynamic: false },
        { family: 'inet6', local: 'fe80::42:acff:fe11:2', prefixlen: 64, scope: 'link', flags: [], dynamic: false },
      ],
    },
  ],
  routes: [
    { family: 'inet', dst: 'default', gateway: '172.17.0.1', dev: 'eth0', flags: [] },
    { family: 'inet', dst: '172.17.0.0/16', dev: 'eth0', protocol: 'kernel', scope: 'link', prefsrc: '172.17.0.2', flags: [] },
    { family: 'inet', dst: '192.0.2.0/24', gateway: '172.17.0.254', dev: 'eth0', protocol: 'static', metric: 5, flags: ['onlink'] },
    { family: 'inet6', dst: 'fd00::/64', dev: 'eth0', protocol: 'kernel', metric: 256, pref: 'medium', flags: [] },
    { family: 'inet6', dst: 'default', gateway: 'fd00::1', dev: 'eth0', metric: 1024, pref: 'medium', flags: [] },
  ],
  resolvers: ['127.0.0.11', '192.0.2.53'],
  listening: { tcp: [], udp: [] },
};

test('bridge plan: the bridge takes eth0\'s MAC, addresses and routes move over, each step with its undo', () => {
  const plan = planBridge({ name: 'vm1', net: container });
  const lines = plan.steps.map((s) => `${s.argv.join(' ')}${s.undo ? `  <-  ${s.undo.join(' ')}` : ''}`);
  assert.deepEqual(lines, [
    'ip link add br-vm1 address 02:42:ac:11:00:02 mtu 1500 type bridge  <-  ip link delete br-vm1',
    'ip tuntap add dev tap-vm1 mode tap  <-  ip link delete tap-vm1',
    'ip link set tap-vm1 mtu 1500 master br-vm1 up',
    'ip link set br-vm1 up',
    'ip -6 route delete default via fd00::1 dev eth0 metric 1024  <-  ip -6 route add default via fd00::1 dev eth0 metric 1024',
    'ip -4 route delete 192.0.2.0/24 via 172.17.0.254 dev eth0 proto static metric 5 onlink  <-  ip -4 route add 192.0.2.0/24 via 172.17.0.254 dev eth0 proto static metric 5 onlink',
    'ip -4 route delete default via 172.17.0.1 dev eth0  <-  ip -4 route add default via 172.17.0.1 dev eth0',
    'ip address delete fd00::2/64 dev eth0  <-  ip address add fd00::2/64 dev eth0 nodad',
    'ip address delete 172.17.0.9/16 dev eth0  <-  ip address add 172.17.0.9/16 label eth0:1 dev eth0',
    'ip address delete 172.17.0.2/16 dev eth0  <-  ip address add 172.17.0.2/16 broadcast 172.17.255.255 dev eth0',
    'ip link set eth0 master br-vm1  <-  ip link set eth0 nomaster',
    'ip address add 172.17.0.2/16 broadcast 172.17.255.255 dev br-vm1  <-  ip address delete 172.17.0.2/16 dev br-vm1',
    'ip address add 172.17.0.9/16 dev br-vm1  <-  ip address delete 172.17.0.9/16 dev br-vm1',
    'ip address add fd00::2/64 dev br-vm1 nodad  <-  ip address delete fd00::2/64 dev br-vm1',
    'ip -4 route add default via 172.17.0.1 dev br-vm1  <-  ip -4 route delete default via 172.17.0.1 dev br-vm1',
    'ip -4 route add 192.0.2.0/24 via 172.17.0.254 dev br-vm1 proto static metric 5 onlink  <-  ip -4 route delete 192.0.2.0/24 via 172.17.0.254 dev br-vm1 proto static metric 5 onlink',
    'ip -6 route add default via fd00::1 dev br-vm1 metric 1024  <-  ip -6 route delete default via fd00::1 dev br-vm1 metric 1024',
  ]);
  // undone last first: routes off the bridge, addresses off the bridge, eth0 out, then eth0's addresses in their order
  assert.deepEqual(plan.guestNic, { name: 'eth0', mac: macAddress('vm1', 0), dhcp: true, addresses: [] });
  assert.deepEqual(plan.nic, { kind: 'tap', mac: macAddress('vm1', 0), ifname: 'tap-vm1' });
  assert.deepEqual(plan.warnings, []);
});

test('--ip: static guest address, the container\'s gateway by default, resolvers it can reach', () => {
  const plan = planBridge({ name: 'vm1', net: container, ip: '172.17.0.50/16' });
  assert.deepEqual(plan.guestNic, { name: 'eth0', mac: macAddress('vm1', 0), dhcp: false, addresses: ['172.17.0.50/16'], gateway: '172.17.0.1', nameservers: ['192.0.2.53'] });
  assert.equal(planBridge({ name: 'vm1', net: container, ip: '172.17.0.50/16', gateway: '172.17.0.254' }).guestNic.gateway, '172.17.0.254');
  assert.deepEqual(planBridge({ name: 'vm1', net: container, ip: '10.9.0.5/24' }).warnings, ["--ip 10.9.0.5/24 is outside the container's subnets; the VM may not reach the network"]);
  assert.equal(planBridge({ name: 'vm1', net: container, ip: '10.9.0.5/24' }).guestNic.gateway, undefined);
});

test('refusals: the container\'s own address as --ip, an eth0 already in a bridge, no eth0', () => {
  assert.throws(() => planBridge({ name: 'vm1', net: container, ip: '172.17.0.2/16' }), /--ip 172\.17\.0\.2\/16 is the container's own address/);
  const enslaved = { ...container, links: [{ ...container.links[0]!, master: 'br0' }] };
  assert.throws(() => planBridge({ name: 'vm1', net: enslaved }), /eth0 is already in bridge br0/);
  assert.throws(() => planBridge({ name: 'vm1', net: { ...container, links: [], routes: [] } }), /needs the container's eth0/);
});
