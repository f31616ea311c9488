import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ProblemsError } from '../errors.js';
import { normalizePciAddress, parsePortSpecs, validatePortSpecs } from './port-spec.js';

const problemsOf = (texts: string[]) => validatePortSpecs(texts).map((p) => p.message);

test('PCI addresses: long and short form, normalized to the long lower-case form', () => {
  assert.equal(normalizePciAddress('0000:05:00.0'), '0000:05:00.0');
  assert.equal(normalizePciAddress('05:00.1'), '0000:05:00.1');
  assert.equal(normalizePciAddress('0000:AF:1F.7'), '0000:af:1f.7');
  for (const bad of ['05:00', '5:00.0', '0000:05:20.0', '0000:05:00.8', '000:05:00.0', 'g5:00.0', '']) {
    assert.equal(normalizePciAddress(bad), undefined, bad);
  }
});

test('a PCI port with every key', () => {
  const [spec] = parsePortSpecs(['05:00.0,vlan=42,mac=52:54:00:AB:CD:EF,ip=10.1.1.1/24,ip=fd00::1/64,rx_police=2.5,tx_police=1,ingress=not icmp,egress=ip or arp']);
  assert.deepEqual(spec, {
    kind: 'pci',
    text: '05:00.0,vlan=42,mac=52:54:00:AB:CD:EF,ip=10.1.1.1/24,ip=fd00::1/64,rx_police=2.5,tx_police=1,ingress=not icmp,egress=ip or arp',
    pci: '0000:05:00.0',
    vlan: 42,
    mac: '52:54:00:ab:cd:ef',
    addresses: ['10.1.1.1/24', 'fd00::1/64'],
    rxPolice: 2.5,
    txPolice: 1,
    ingress: 'not icmp',
    egress: 'ip or arp',
  });
});

test('vhost-user and soft ports', () => {
  const specs = parsePortSpecs(['vhost-user:/run/sw/a.sock,mac=52:54:00:00:00:0a,ip=10.0.0.1/24', 'soft,peer=/run/vm2/eth1.sock,vlan=7,ip=dhcp']);
  assert.deepEqual(specs, [
    { kind: 'vhost-user', text: 'vhost-user:/run/sw/a.sock,mac=52:54:00:00:00:0a,ip=10.0.0.1/24', socket: '/run/sw/a.sock', mac: '52:54:00:00:00:0a', addresses: ['10.0.0.1/24'] },
    { kind: 'soft', text: 'soft,peer=/run/vm2/eth1.sock,vlan=7,ip=dhcp', peer: '/run/vm2/eth1.sock', vlan: 7, addresses: ['dhcp'] },
  ]);
});

test('an unknown key lists the valid ones for that kind of port', () => {
  assert.deepEqual(problemsOf(['05:00.0,speed=10G']), [
    "port 1 '05:00.0,speed=10G': unknown key 'speed'; valid keys for a pci port: vlan, mac, ip, rx_police, tx_police, ingress, egress",
  ]);
  assert.deepEqual(problemsOf(['vhost-user:/tmp/x.sock,vlan=3']), ["port 1 'vhost-user:/tmp/x.sock,vlan=3': unknown key 'vlan'; valid keys for a vhost-user port: mac, ip"]);
});

test('every bad value is reported, all at once, with exit 3', () => {
  const texts = [
    '05:00',
    'eth1',
    '05:00.0,vlan=4095,mac=01:00:5e:00:00:01,ip=10.0.0.300/24,rx_police=fast,ingress=',
    '06:00.0,vlan=1,vlan=2',
    'vhost-user:relative.sock',
    'soft,vlan=3',
  ];
  const problems = problemsOf(texts);
  const expected = [
    /port 1 '05:00': '05:00' is not a PCI address; give DDDD:BB:DD.F or BB:DD.F/,
    /port 2 'eth1': 'eth1' is neither a PCI address, soft, vhost-user:SOCKET nor netdev:IFNAME/,
    /vlan '4095' is not valid; give a VLAN ID from 1 to 4094/,
    /mac '01:00:5e:00:00:01' is a multicast address/,
    /ip '10.0.0.300\/24' is not an address with a prefix length/,
    /rx_police 'fast' is not valid; give a rate in Gbit\/s/,
    /ingress needs a value/,
    /port 4 .*: vlan is given twice/,
    /the vhost-user socket 'relative.sock' is not an absolute path/,
    /port 6 'soft,vlan=3': a soft port needs peer=SOCKET/,
  ];
  assert.equal(problems.length, expected.length, problems.join('\n'));
  expected.forEach((re, i) => assert.match(problems[i]!, re));
  assert.throws(() => parsePortSpecs(texts), (e: unknown) => e instanceof ProblemsError && e.exitCode === 3);
});

test('the same PCI device, socket or MAC twice is an error, whatever the form', () => {
  assert.deepEqual(problemsOf(['0000:05:00.0', '05:00.0,vlan=3']), [
    "PCI address 0000:05:00.0 is given twice ('0000:05:00.0' and '05:00.0,vlan=3'); each port can be used once",
  ]);
  assert.match(problemsOf(['vhost-user:/s/a.sock', 'soft,peer=/s/a.sock'])[0]!, /socket \/s\/a.sock is given twice/);
  assert.match(problemsOf(['05:00.0,mac=52:54:00:00:00:01', '05:00.1,mac=52:54:00:00:00:01'])[0]!, /MAC 52:54:00:00:00:01 is given twice/);
});

test('a filter keeps quotes, brackets and = as they are (the Lua renderer escapes them)', () => {
  const [spec] = parsePortSpecs(['05:00.0,ingress=ip[0]=0x45 and "x" ]]']);
  assert.equal((spec as { ingress: string }).ingress, 'ip[0]=0x45 and "x" ]]');
});

test('netdev ports: a container interface, with mac and ip; bad names, Snabb-only keys and a repeated interface are refused', () => {
  assert.deepEqual(parsePortSpecs(['netdev:eth1,ip=10.77.0.1/24', 'netdev:e1-1.100,mac=02:00:00:00:00:0a,ip=dhcp']), [
    { kind: 'netdev', text: 'netdev:eth1,ip=10.77.0.1/24', ifname: 'eth1', addresses: ['10.77.0.1/24'] },
    { kind: 'netdev', text: 'netdev:e1-1.100,mac=02:00:00:00:00:0a,ip=dhcp', ifname: 'e1-1.100', mac: '02:00:00:00:00:0a', addresses: ['dhcp'] },
  ]);
  assert.deepEqual(problemsOf(['netdev:', 'netdev:abcdefghijklmnop', 'netdev:a/b', 'netdev:..', 'netdev:eth1,vlan=5']), [
    "port 1 'netdev:': the interface name is missing; give the container's interface, such as netdev:eth1",
    "port 2 'netdev:abcdefghijklmnop': 'abcdefghijklmnop' is longer than the 15 characters an interface name can have",
    "port 3 'netdev:a/b': 'a/b' is not an interface name; give one as ip link shows it, such as eth1",
    "port 4 'netdev:..': '..' is not an interface name; give one as ip link shows it, such as eth1",
    "port 5 'netdev:eth1,vlan=5': unknown key 'vlan'; valid keys for a netdev port: mac, ip",
  ]);
  assert.deepEqual(problemsOf(['netdev:eth1', 'netdev:eth1,ip=10.0.0.1/24']), [
    "interface eth1 is given twice ('netdev:eth1' and 'netdev:eth1,ip=10.0.0.1/24'); each port can be used once",
  ]);
});
