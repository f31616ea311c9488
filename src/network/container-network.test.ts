import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseIpAddrJson, parseIpRouteJson, parseListeningPorts, parseResolvConf, uplinkOf } from './container-network.js';

// `ip -j address show` and `ip -j route show` output from a Docker-like container, trimmed
const addrJson = JSON.stringify([
  { ifindex: 1, ifname: 'lo', mtu: 65536, address: '00:00:00:00:00:00', addr_info: [{ family: 'inet', local: '127.0.0.1', prefixlen: 8, scope: 'host', label: 'lo', valid_life_time: 4294967295 }] },
  {
    ifindex: 2, ifname: 'eth0', mtu: 1450, address: '02:42:ac:11:00:02',
    addr_info: [
      { family: 'inet', local: '172.17.0.2', prefixlen: 16, broadcast: '172.17.255.255', scope: 'global', noprefixroute: true, label: 'eth0', valid_life_time: 4294967295 },
      { family: 'inet6', local: 'fd00::2', prefixlen: 64, scope: 'global', nodad: true, valid_life_time: 4294967295 },
      { family: 'inet6', local: '2001:db8::5', prefixlen: 64, scope: 'global', dynamic: true, mngtmpaddr: true, valid_life_time: 86400 },
      { family: 'inet6', local: 'fe80::42:acff:fe11:2', prefixlen: 64, scope: 'link', valid_life_time: 4294967295 },
    ],
  },
]);

test('addresses keep the flags ip can take back; dynamic ones are marked', () => {
  const [lo, eth0] = parseIpAddrJson(addrJson);
  assert.equal(lo!.name, 'lo');
  assert.equal(eth0!.mtu, 1450);
  assert.equal(eth0!.mac, '02:42:ac:11:00:02');
  assert.deepEqual(eth0!.addresses[0], { family: 'inet', local: '172.17.0.2', prefixlen: 16, scope: 'global', broadcast: '172.17.255.255', label: 'eth0', flags: ['noprefixroute'], dynamic: false });
  assert.deepEqual(eth0!.addresses[1]!.flags, ['nodad']);
  assert.equal(eth0!.addresses[2]!.dynamic, true);
  assert.equal(eth0!.addresses[3]!.scope, 'link');
});

test('routes, and the uplink is the default route\'s device', () => {
  const routes = parseIpRouteJson(
    JSON.stringify([
      { dst: 'default', gateway: '172.17.0.1', dev: 'eth0', flags: [] },
      { dst: '172.17.0.0/16', dev: 'eth0', protocol: 'kernel', scope: 'link', prefsrc: '172.17.0.2', flags: [] },
    ]),
    'inet',
  );
  assert.deepEqual(routes[0], { family: 'inet', dst: 'default', gateway: '172.17.0.1', dev: 'eth0', flags: [] });
  assert.equal(routes[1]!.protocol, 'kernel');
  const net = { links: parseIpAddrJson(addrJson), routes, resolvers: [], listening: { tcp: [], udp: [] } };
  assert.equal(uplinkOf(net)?.name, 'eth0');
  assert.equal(uplinkOf({ ...net, routes: [] })?.name, 'eth0', 'eth0 without a default route');
  assert.equal(uplinkOf({ ...net, links: net.links.slice(0, 1), routes: [] }), undefined);
});

test('resolv.conf nameservers', () => {
  assert.deepEqual(parseResolvConf('# Docker\nsearch example.com\nnameserver 127.0.0.11\n  nameserver 10.0.0.53 \noptions ndots:0\n'), ['127.0.0.11', '10.0.0.53']);
});

test('listening ports: TCP LISTEN on the wildcard or an own address; UDP bound ones', () => {
  const tcp = [
    '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
    '   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1',
    '   1: 020011AC:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1',
    '   2: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1',
    '   3: 020011AC:A1B2 010011AC:0050 01 00000000:00000000 00:00000000 00000000     0        0 4 1',
  ].join('\n');
  // 22 on 0.0.0.0, 8080 on 172.17.0.2; not 3306 on 127.0.0.1, not an established connection
  assert.deepEqual(parseListeningPorts(tcp, 'tcp', ['172.17.0.2']), [22, 8080]);
  const udp6 = '  sl  local_address                         remote_address                        st\n   0: 00000000000000000000000000000000:14E9 00000000000000000000000000000000:0000 07\n';
  assert.deepEqual(parseListeningPorts(udp6, 'udp', []), [5353]);
});
