import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ContainerNetwork } from './container-network.js';
import { parseCidr } from './ipv4.js';
import { macAddress } from './mac-address.js';
import { chooseNatSubnet, planNat, takenNetworks } from './plan-nat.js';

const container: ContainerNetwork = {
  links: [
    { name: 'lo', mac: '00:00:00:00:00:00', mtu: 65536, addresses: [{ family: 'inet', local: '127.0.0.1', prefixlen: 8, scope: 'host', flags: [], dynamic: false }] },
    { name: 'eth0', mac: '02:42:0a:00:02:05', mtu: 1450, addresses: [{ family: 'inet', local: '10.0.2.5', prefixlen: 24, scope: 'global', flags: [], dynamic: false }] },
  ],
  routes: [
    { family: 'inet', dst: 'default', gateway: '10.0.2.1', dev: 'eth0', flags: [] },
    { family: 'inet', dst: '10.0.3.0/24', gateway: '10.0.2.1', dev: 'eth0', flags: [] },
  ],
  resolvers: ['127.0.0.11'],
  listening: { tcp: [22], udp: [] },
};

test('the subnet avoids every address and route the container has', () => {
  assert.deepEqual(takenNetworks(container).map((n) => n.base), [parseCidr('127.0.0.0/8')!.base, parseCidr('10.0.2.0/24')!.base, parseCidr('10.0.3.0/24')!.base]);
  assert.equal(chooseNatSubnet([])!.base, parseCidr('10.0.2.0/24')!.base);
  assert.equal(chooseNatSubnet(takenNetworks(container))!.base, parseCidr('10.0.4.0/24')!.base);
  assert.equal(chooseNatSubnet([parseCidr('10.0.0.0/16')!]), undefined);
});

test('nat plan: bridge and tap, the VM at .15 with a fixed lease for its MAC, the uplink MTU', () => {
  const plan = planNat({ name: 'vm1', net: container, ownPorts: [5901, 8006], dnsmasqDir: '/run/snabbvm/vm1/dnsmasq' });
  assert.equal(plan.subnet, '10.0.4.0/24');
  assert.equal(plan.gatewayIp, '10.0.4.2');
  assert.equal(plan.vmIp, '10.0.4.15');
  assert.equal(plan.uplink, 'eth0');
  assert.deepEqual(plan.nic, { kind: 'tap', mac: macAddress('vm1', 0), ifname: 'tap-vm1' });
  assert.deepEqual(plan.guestNic, { name: 'eth0', mac: macAddress('vm1', 0), dhcp: true, addresses: [], mtu: 1450 });
  assert.deepEqual(plan.steps.map((s) => s.argv.join(' ')), [
    'ip link add br-vm1 mtu 1450 type bridge',
    'ip address add 10.0.4.2/24 dev br-vm1',
    'ip link set br-vm1 up',
    'ip tuntap add dev tap-vm1 mode tap',
    'ip link set tap-vm1 mtu 1450 master br-vm1 up',
    'nft -f -',
  ]);
  assert.deepEqual(plan.steps.filter((s) => s.undo).map((s) => s.undo!.join(' ')), ['ip link delete br-vm1', 'ip link delete tap-vm1', 'nft delete table ip snabbvm-vm1']);
  assert.equal(plan.steps.at(-1)!.input, plan.nftRuleset);
  assert.ok(plan.dnsmasqArgv.includes(`--dhcp-host=${macAddress('vm1', 0)},10.0.4.15`));
  assert.ok(plan.dnsmasqArgv.includes('--dhcp-range=10.0.4.15,10.0.4.254,255.255.255.0,12h'));
  assert.ok(plan.dnsmasqArgv.includes('--dhcp-option=option:dns-server,10.0.4.2'));
  assert.ok(plan.dnsmasqArgv.includes('--dhcp-option-force=option:mtu,1450'));
  assert.ok(plan.dnsmasqArgv.includes('--interface=br-vm1') && plan.dnsmasqArgv.includes('--bind-interfaces'));
});

test('nat rule set: every port of the uplink address to the VM but the launcher\'s and the container\'s own', () => {
  const plan = planNat({ name: 'vm1', net: container, ownPorts: [5901, 8006], dnsmasqDir: '/d' });
  assert.deepEqual(plan.keptPorts, { tcp: [22, 5901, 8006], udp: [5901, 8006] });
  assert.equal(
    plan.nftRuleset,
    [
      'table ip snabbvm-vm1 {',
      '\tchain prerouting {',
      '\t\ttype nat hook prerouting priority dstnat; policy accept;',
      '\t\tiifname "eth0" ip daddr { 10.0.2.5 } tcp dport != { 22, 5901, 8006 } dnat to 10.0.4.15',
      '\t\tiifname "eth0" ip daddr { 10.0.2.5 } udp dport != { 5901, 8006 } dnat to 10.0.4.15',
      '\t}',
      '\tchain postrouting {',
      '\t\ttype nat hook postrouting priority srcnat; policy accept;',
      '\t\tip saddr 10.0.4.0/24 oifname != "br-vm1" masquerade',
      '\t}',
      '}',
      '',
    ].join('\n'),
  );
  const nothingKept = planNat({ name: 'vm1', net: { ...container, listening: { tcp: [], udp: [] } }, ownPorts: [], dnsmasqDir: '/d' });
  assert.match(nothingKept.nftRuleset, /ip daddr \{ 10\.0\.2\.5 \} meta l4proto tcp dnat to 10\.0\.4\.15/);
});

test('nat plan without an uplink: no port forwarding, still a subnet and DHCP', () => {
  const isolated: ContainerNetwork = { ...container, links: container.links.slice(0, 1), routes: [] };
  const plan = planNat({ name: 'vm1', net: isolated, ownPorts: [], dnsmasqDir: '/d' });
  assert.equal(plan.uplink, undefined);
  assert.equal(plan.subnet, '10.0.2.0/24');
  assert.doesNotMatch(plan.nftRuleset, /dnat/);
  assert.equal(plan.mtu, 1500);
  assert.equal(plan.guestNic.mtu, undefined);
});

test('a leftover interface with our name is reported, not reused', () => {
  const leftover: ContainerNetwork = { ...container, links: [...container.links, { name: 'br-vm1', mac: '', mtu: 1500, addresses: [] }] };
  assert.throws(() => planNat({ name: 'vm1', net: leftover, ownPorts: [], dnsmasqDir: '/d' }), /br-vm1 already exists.*ip link delete br-vm1/);
});

test('dnsmasq never runs as root: it drops to the dnsmasq user when the system has one, else nobody', async () => {
  const { mkdtempSync, rmSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { dnsmasqUser } = await import('./start-dnsmasq.js');
  const users = (u: string) => planNat({ name: 'vm1', net: container, ownPorts: [], dnsmasqDir: '/d', dnsmasqUser: u }).dnsmasqArgv.filter((a) => a.startsWith('--user'));
  assert.deepEqual(users('dnsmasq'), ['--user=dnsmasq']);
  assert.deepEqual(planNat({ name: 'vm1', net: container, ownPorts: [], dnsmasqDir: '/d' }).dnsmasqArgv.filter((a) => a.startsWith('--user')), ['--user=nobody']);
  const dir = mkdtempSync(`${tmpdir()}/snabbvm-passwd-`);
  try {
    writeFileSync(`${dir}/with`, 'root:x:0:0:root:/root:/bin/bash\ndnsmasq:x:999:65534:dnsmasq:/var/lib/misc:/usr/sbin/nologin\n');
    writeFileSync(`${dir}/without`, 'root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n');
    assert.equal(dnsmasqUser(`${dir}/with`), 'dnsmasq');
    assert.equal(dnsmasqUser(`${dir}/without`), 'nobody');
    assert.equal(dnsmasqUser(`${dir}/missing`), 'nobody');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('IPv6 addresses: a ULA /64 from the VM name, and the SLAAC address a guest forms from its MAC', async () => {
  const { eui64Address, hostInPrefix, ulaPrefix64 } = await import('./ipv6.js');
  assert.match(ulaPrefix64('vm1'), /^fd[0-9a-f]{2}:[0-9a-f]{1,4}:[0-9a-f]{1,4}:0$/);
  assert.equal(ulaPrefix64('vm1'), ulaPrefix64('vm1'), 'stable for a name');
  assert.notEqual(ulaPrefix64('vm1'), ulaPrefix64('vm2'), 'distinct between names');
  // RFC 4291 appendix A: the U/L bit flipped, ff:fe in the middle
  assert.equal(eui64Address('fd00:1:2:0', '52:54:00:12:34:56'), 'fd00:1:2:0:5054:ff:fe12:3456');
  assert.equal(eui64Address('fd00:0:0:0', '02:00:00:00:00:01'), 'fd00::ff:fe00:1');
  assert.equal(hostInPrefix('fd00:1:2:0', 2), 'fd00:1:2::2');
  assert.equal(hostInPrefix('fd12:3456:789a:0', 0), 'fd12:3456:789a::');
});

test('nat IPv6: RA only from dnsmasq; without an IPv6 route out, no NAT66 and a router lifetime of 0', async () => {
  const { eui64Address, hostInPrefix, ulaPrefix64 } = await import('./ipv6.js');
  const plan = planNat({ name: 'vm1', net: container, ownPorts: [5901], dnsmasqDir: '/d' });
  const p64 = ulaPrefix64('vm1');
  assert.equal(plan.ipv6.prefix, `${hostInPrefix(p64, 0)}/64`);
  assert.equal(plan.ipv6.vmIp, eui64Address(p64, macAddress('vm1', 0)));
  assert.equal(plan.ipv6.egress, false);
  assert.equal(plan.ipv6.nftRuleset, undefined);
  assert.deepEqual(plan.ipv6.steps.map((s) => s.argv.join(' ')), [`ip -6 address add ${hostInPrefix(p64, 2)}/64 dev br-vm1 nodad`]);
  assert.deepEqual(plan.ipv6.dnsmasqArgs, [`--listen-address=${hostInPrefix(p64, 2)}`, '--enable-ra', `--dhcp-range=${hostInPrefix(p64, 0)},ra-only,64,12h`, '--ra-param=br-vm1,mtu:1450,0,0']);
  assert.equal(plan.guestNic.dhcp, true, 'the guest keeps DHCP for IPv4; the kernel takes the RA on its own');
});

test('nat IPv6 with a way out: NAT66, the same ports forwarded to the VM on the uplink\'s global IPv6 addresses', async () => {
  const withV6: ContainerNetwork = {
    ...container,
    links: container.links.map((l) =>
      l.name !== 'eth0'
        ? l
        : {
            ...l,
            addresses: [
              ...l.addresses,
              { family: 'inet6', local: '2001:db8:1::5', prefixlen: 64, scope: 'global', flags: [], dynamic: false },
              { family: 'inet6', local: 'fe80::42:aff:fe00:205', prefixlen: 64, scope: 'link', flags: [], dynamic: false },
            ],
          },
    ),
    routes: [...container.routes, { family: 'inet6', dst: 'default', gateway: '2001:db8:1::1', dev: 'eth0', flags: [] }],
  };
  const plan = planNat({ name: 'vm1', net: withV6, ownPorts: [5901, 8006], dnsmasqDir: '/d' });
  const { prefix, vmIp } = plan.ipv6;
  assert.equal(plan.ipv6.egress, true);
  assert.ok(plan.ipv6.dnsmasqArgs.includes('--ra-param=br-vm1,mtu:1450,0,1800'));
  assert.equal(
    plan.ipv6.nftRuleset,
    [
      'table ip6 snabbvm-vm1 {',
      '\tchain prerouting {',
      '\t\ttype nat hook prerouting priority dstnat; policy accept;',
      `\t\tiifname "eth0" ip6 daddr { 2001:db8:1::5 } tcp dport != { 22, 5901, 8006 } dnat to ${vmIp}`,
      `\t\tiifname "eth0" ip6 daddr { 2001:db8:1::5 } udp dport != { 5901, 8006 } dnat to ${vmIp}`,
      '\t}',
      '\tchain postrouting {',
      '\t\ttype nat hook postrouting priority srcnat; policy accept;',
      `\t\tip6 saddr ${prefix} oifname != "br-vm1" masquerade`,
      '\t}',
      '}',
      '',
    ].join('\n'),
  );
  assert.deepEqual(plan.ipv6.steps.at(-1)!.undo, ['nft', 'delete', 'table', 'ip6', 'snabbvm-vm1']);
  assert.doesNotMatch(plan.nftRuleset, /ip6|2001/, 'the IPv4 table stays IPv4');
});
