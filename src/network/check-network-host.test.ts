import assert from 'node:assert/strict';
import { test } from 'node:test';
import { findNetworkHostProblem, hasCapability, parseCapEff } from './check-network-host.js';
import { networkNames } from './interface-names.js';
import { contains, formatCidr, hostAddress, netmask, overlaps, parseCidr } from './ipv4.js';

test('CapEff is read from /proc/self/status', () => {
  const full = parseCapEff('Name:\tnode\nCapInh:\t0000000000000000\nCapEff:\t000001fffeffffff\n');
  assert.equal(hasCapability(full, 12), true);
  const withoutNetAdmin = parseCapEff('CapEff:\t000001fffeffefff\n');
  assert.equal(hasCapability(withoutNetAdmin, 12), false);
  assert.equal(hasCapability(withoutNetAdmin, 21), true);
});

test('nat and bridge need CAP_NET_ADMIN, /dev/net/tun and their programs; user and none need nothing', () => {
  const ok = { capEff: parseCapEff('CapEff:\t000001fffeffffff'), tunAvailable: true, missingPrograms: [] };
  assert.equal(findNetworkHostProblem('nat', ok), undefined);
  const noCap = { ...ok, capEff: parseCapEff('CapEff:\t00000000a80425fb') }; // Docker's default set
  assert.match(findNetworkHostProblem('nat', noCap)!, /--net nat needs CAP_NET_ADMIN.*--privileged.*--net user/);
  assert.match(findNetworkHostProblem('bridge', noCap)!, /--net bridge needs CAP_NET_ADMIN/);
  assert.equal(findNetworkHostProblem('user', noCap), undefined);
  assert.equal(findNetworkHostProblem('none', noCap), undefined);
  assert.match(findNetworkHostProblem('nat', { ...ok, tunAvailable: false })!, /\/dev\/net\/tun.*--device \/dev\/net\/tun/);
  assert.match(findNetworkHostProblem('nat', { ...ok, missingPrograms: ['nft', 'dnsmasq'] })!, /needs nft, dnsmasq; install them \(apt-get install nftables dnsmasq-base\)/);
});

test('interface names fit in 15 characters and differ per VM', () => {
  assert.deepEqual(networkNames('vm1'), { bridge: 'br-vm1', tap: 'tap-vm1', nftTable: 'snabbvm-vm1' });
  const long = networkNames('a-rather-long-vm-name');
  assert.ok(long.bridge.length <= 15 && long.tap.length <= 15, JSON.stringify(long));
  assert.notEqual(networkNames('a-rather-long-vm-name2').tap, long.tap);
});

test('IPv4 helpers', () => {
  const net = parseCidr('10.0.2.77/24')!;
  assert.equal(formatCidr(net), '10.0.2.0/24');
  assert.equal(hostAddress(net, 15), '10.0.2.15');
  assert.equal(netmask(24), '255.255.255.0');
  assert.equal(netmask(16), '255.255.0.0');
  assert.ok(overlaps(net, parseCidr('10.0.0.0/16')!));
  assert.ok(!overlaps(net, parseCidr('10.0.3.0/24')!));
  assert.ok(contains(net, '10.0.2.255') && !contains(net, '10.0.3.0'));
  assert.equal(parseCidr('10.0.2.256/24'), undefined);
});
