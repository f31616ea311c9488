import assert from 'node:assert/strict';
import { test } from 'node:test';
import { deriveVmState, formatDuration, parseDnsmasqLeases, parsePortStatuses, renderStatusBar, renderStatusText, type VmStatus } from './vm-status.js';

test('the VM state from QEMU status and a powerdown under way', () => {
  assert.equal(deriveVmState(undefined, false), 'starting');
  assert.equal(deriveVmState('prelaunch', false), 'starting');
  assert.equal(deriveVmState('running', false), 'running');
  assert.equal(deriveVmState('running', true), 'shutting-down');
  assert.equal(deriveVmState('shutdown', false), 'shutting-down');
  assert.equal(deriveVmState('paused', false), 'paused');
  assert.equal(deriveVmState('guest-panicked', false), 'paused');
});

test("dnsmasq's lease file gives the guest's addresses", () => {
  const leases = '1764420000 02:8a:1f:00:00:00 172.30.0.2 vm1 01:02:8a:1f:00:00:00\n1764420001 02:8A:1F:00:00:01 172.30.0.3 * *\n\ngarbage\n';
  assert.deepEqual(parseDnsmasqLeases(leases), [
    { mac: '02:8a:1f:00:00:00', ip: '172.30.0.2', hostname: 'vm1' },
    { mac: '02:8a:1f:00:00:01', ip: '172.30.0.3' },
  ]);
});

test("state.json's ports: entries without a name are dropped, missing fields filled", () => {
  assert.deepEqual(parsePortStatuses(undefined), []);
  assert.deepEqual(parsePortStatuses([{ name: 'eth1', state: 'running', restarts: 2, pid: 7 }, { state: 'x' }, 'eth2', { name: 'eth3' }]), [
    { name: 'eth1', state: 'running', restarts: 2, pid: 7 },
    { name: 'eth3', state: 'unknown', restarts: 0 },
  ]);
});

test('durations read as a person would say them', () => {
  assert.equal(formatDuration(5), '5s');
  assert.equal(formatDuration(125), '2m05s');
  assert.equal(formatDuration(3 * 3600 + 60), '3h01m');
  assert.equal(formatDuration(2 * 86400 + 3600), '2d1h');
});

test('status text: state, facts, addresses, consoles and ports with counters', () => {
  const status: VmStatus = {
    name: 'vm1',
    state: 'running',
    qemuStatus: 'running',
    accel: 'tcg',
    cpus: 2,
    memoryMiB: 2048,
    uptimeSec: 75,
    addresses: ['172.30.0.2'],
    vnc: '0.0.0.0:5901',
    tmuxSession: 'vm1',
    ports: [
      { name: 'eth1', device: '0000:05:00.0', state: 'running', restarts: 1, counters: { rxPackets: 12345, rxBytes: 2_500_000, txPackets: 10, txBytes: 600, rxDrops: 3 } },
      { name: 'eth2', device: 'vhost-user:/x', state: 'external', restarts: 0 },
    ],
  };
  const text = renderStatusText(status);
  assert.match(text, /^VM vm1: running, up 1m15s, tcg, 2 vCPU, 2048 MiB$/m);
  assert.match(text, /addresses: 172\.30\.0\.2/);
  assert.match(text, /VNC 0\.0\.0\.0:5901/);
  assert.match(text, /tmux session vm1 \(snabbvm attach\)/);
  assert.match(text, /eth1 +0000:05:00\.0 +running +restarts 1 +rx 12\.3k pkts 2\.5MB +tx 10 pkts 600B +drops 3/);
  assert.match(text, /eth2 +vhost-user:\/x +external +restarts 0$/m);
  assert.equal(renderStatusText({ name: 'vm1', state: 'stopped', addresses: [], ports: [] }), 'VM vm1: stopped');
  const fellBack = renderStatusText({ ...status, accelFallback: 'a test guest ran no code under KVM within 5 s' });
  assert.match(fellBack, /^VM vm1: running, up 1m15s, tcg \(KVM does not work here: a test guest ran no code under KVM within 5 s\), 2 vCPU/m);
  assert.deepEqual(renderStatusBar({ state: 'shutting-down', addresses: ['10.0.0.2', '10.0.0.3'] }), { state: 'shutting down', addresses: '10.0.0.2 10.0.0.3' });
});
