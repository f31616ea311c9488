import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import type { GuestNic } from '../network/guest-nic.js';
import { buildInstanceId, renderNetworkConfig, renderNetworkData, renderSeedFiles, splitSshKeys, type SeedInput } from './render-seed.js';

const nics: GuestNic[] = [
  { name: 'eth0', mac: '52:54:00:AA:BB:00', dhcp: true, addresses: [] },
  { name: 'eth1', mac: '52:54:00:aa:bb:01', dhcp: false, addresses: ['10.1.1.1/24', 'fd00::1/64'], gateway: '10.1.1.254', nameservers: ['10.1.1.53'], mtu: 9000 },
  { name: 'eth2', mac: '52:54:00:aa:bb:02', dhcp: false, addresses: [] },
];
const base: SeedInput = { format: 'nocloud', instanceId: 'iid-1', hostname: 'vm1', sshKeys: [], nics: [] };
const fileMap = (input: SeedInput) => new Map(renderSeedFiles(input).map((f) => [f.path, f.content.toString()]));

describe('renderSeedFiles (NoCloud)', () => {
  test('without user-data: meta-data with instance-id and hostname, an empty cloud-config, nothing else', () => {
    const files = fileMap(base);
    assert.deepEqual([...files.keys()], ['meta-data', 'user-data']);
    assert.deepEqual(parse(files.get('meta-data')!), { 'instance-id': 'iid-1', 'local-hostname': 'vm1' });
    assert.equal(files.get('user-data'), '#cloud-config\n');
  });

  test('SSH keys in meta-data public-keys, whole lines; the user-data byte for byte', () => {
    const key = `ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI${'x'.repeat(60)} someone@somewhere`;
    const userData = Buffer.from([0x1f, 0x8b, 1, 2, 3]);
    const files = renderSeedFiles({ ...base, sshKeys: [key], userData });
    assert.deepEqual(parse(files.find((f) => f.path === 'meta-data')!.content.toString())['public-keys'], [key]);
    assert.ok(files.find((f) => f.path === 'meta-data')!.content.toString().includes(key), 'not folded');
    assert.equal(files.find((f) => f.path === 'user-data')!.content, userData);
  });

  test('a password hash goes in vendor-data, which user-data overrides', () => {
    const vendor = fileMap({ ...base, passwordHash: '$6$salt$hash' }).get('vendor-data')!;
    assert.match(vendor, /^#cloud-config\n/);
    assert.deepEqual(parse(vendor), { password: '$6$salt$hash', chpasswd: { expire: false } });
  });

  test('network-config only when there are NICs', () => {
    const net = parse(fileMap({ ...base, nics }).get('network-config')!);
    assert.equal(net.version, 2);
    assert.deepEqual(Object.keys(net.ethernets), ['eth0', 'eth1', 'eth2']);
  });
});

test('renderNetworkConfig: v2, matched by MAC (lower case), named, DHCP or static', () => {
  assert.deepEqual(renderNetworkConfig(nics), {
    version: 2,
    ethernets: {
      eth0: { match: { macaddress: '52:54:00:aa:bb:00' }, 'set-name': 'eth0', dhcp4: true },
      eth1: {
        match: { macaddress: '52:54:00:aa:bb:01' },
        'set-name': 'eth1',
        dhcp4: false,
        addresses: ['10.1.1.1/24', 'fd00::1/64'],
        gateway4: '10.1.1.254',
        nameservers: { addresses: ['10.1.1.53'] },
        mtu: 9000,
      },
      eth2: { match: { macaddress: '52:54:00:aa:bb:02' }, 'set-name': 'eth2', dhcp4: false },
    },
  });
});

test('renderNetworkData: the same NICs as OpenStack network_data.json', () => {
  assert.deepEqual(renderNetworkData(nics), {
    links: [
      { id: 'eth0', name: 'eth0', type: 'phy', ethernet_mac_address: '52:54:00:aa:bb:00' },
      { id: 'eth1', name: 'eth1', type: 'phy', ethernet_mac_address: '52:54:00:aa:bb:01', mtu: 9000 },
      { id: 'eth2', name: 'eth2', type: 'phy', ethernet_mac_address: '52:54:00:aa:bb:02' },
    ],
    networks: [
      { id: 'eth0-dhcp4', link: 'eth0', type: 'ipv4_dhcp' },
      { id: 'eth1-0', link: 'eth1', type: 'ipv4', ip_address: '10.1.1.1', netmask: '255.255.255.0', gateway: '10.1.1.254', dns_nameservers: ['10.1.1.53'] },
      { id: 'eth1-1', link: 'eth1', type: 'ipv6', ip_address: 'fd00::1/64', dns_nameservers: ['10.1.1.53'] },
    ],
    services: [],
  });
});

test('renderSeedFiles (config drive): the openstack/latest layout', () => {
  const files = fileMap({ ...base, format: 'configdrive', sshKeys: ['ssh-ed25519 AAAA a', 'ssh-rsa BBBB b'], passwordHash: '$6$s$h', userData: Buffer.from('#cloud-config\n'), nics });
  assert.deepEqual([...files.keys()], ['openstack/latest/meta_data.json', 'openstack/latest/user_data', 'openstack/latest/vendor_data.json', 'openstack/latest/network_data.json']);
  assert.deepEqual(JSON.parse(files.get('openstack/latest/meta_data.json')!), {
    uuid: 'iid-1',
    hostname: 'vm1',
    name: 'vm1',
    public_keys: { 'key-0': 'ssh-ed25519 AAAA a', 'key-1': 'ssh-rsa BBBB b' },
  });
  assert.deepEqual(parse(JSON.parse(files.get('openstack/latest/vendor_data.json')!)['cloud-init']), { password: '$6$s$h', chpasswd: { expire: false } });
});

test('buildInstanceId: stable for the same name and image, different otherwise, fresh with a salt', () => {
  const image = { kind: 'file' as const, path: '/u/debian.qcow2' };
  const id = buildInstanceId('vm1', image);
  assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(buildInstanceId('vm1', image), id);
  assert.notEqual(buildInstanceId('vm2', image), id);
  assert.notEqual(buildInstanceId('vm1', { kind: 'file', path: '/u/other.qcow2' }), id);
  assert.notEqual(buildInstanceId('vm1', { kind: 'url', url: 'https://example.invalid/debian.qcow2' }), id);
  assert.notEqual(buildInstanceId('vm1', image, 'fresh'), id);
});

test('splitSshKeys: one key per line of each --ssh-key, without blanks, comments or repeats', () => {
  assert.deepEqual(splitSshKeys(['ssh-ed25519 A a\n\n# old key\nssh-rsa B b\r\n', 'ssh-ed25519 A a']), ['ssh-ed25519 A a', 'ssh-rsa B b']);
});

describe('shared folders in vendor-data', () => {
  const mounts = [
    { tag: 'data', fstype: 'virtiofs' as const },
    { tag: 'web', fstype: '9p' as const },
  ];

  test('alone: a boothook that mounts each tag at /mnt/TAG with its filesystem', () => {
    const vendor = fileMap({ ...base, mounts }).get('vendor-data')!;
    assert.match(vendor, /^#cloud-boothook\n#!\/bin\/sh\n/);
    assert.ok(vendor.includes('\nmount_share data virtiofs defaults\n'), vendor);
    assert.ok(vendor.includes('\nmount_share web 9p trans=virtio,version=9p2000.L,msize=524288\n'), vendor);
  });

  test('with a password: a MIME multipart of the cloud-config and the boothook', () => {
    const vendor = fileMap({ ...base, mounts, passwordHash: '$6$salt$hash' }).get('vendor-data')!;
    const boundary = /boundary="([^"]+)"/.exec(vendor)![1]!;
    const parts = vendor.split(`--${boundary}`).slice(1, -1);
    assert.equal(parts.length, 2);
    assert.match(parts[0]!, /^\nContent-Type: text\/cloud-config; charset="utf-8"\n\n#cloud-config\n/);
    assert.deepEqual(parse(parts[0]!.split('\n\n').slice(1).join('\n\n')), { password: '$6$salt$hash', chpasswd: { expire: false } });
    assert.match(parts[1]!, /^\nContent-Type: text\/cloud-boothook; charset="utf-8"\n\n#cloud-boothook\n/);
    assert.ok(vendor.endsWith(`--${boundary}--\n`));
  });

  test('config drive: the same vendor-data in vendor_data.json', () => {
    const json = JSON.parse(fileMap({ ...base, format: 'configdrive', mounts }).get('openstack/latest/vendor_data.json')!);
    assert.match(json['cloud-init'], /^#cloud-boothook\n/);
  });
});
