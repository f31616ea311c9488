import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chooseAccel, guestLooksStuck, parseRip, probeKvm } from './probe-accel.js';
import { ExitCode, UserError } from '../errors.js';

test('auto falls back to TCG when the KVM device is missing; kvm refuses with exit 4', () => {
  assert.match(probeKvm('/nonexistent/kvm')!, /does not exist/);
  assert.equal(chooseAccel('auto', '/nonexistent/kvm'), 'tcg');
  assert.equal(chooseAccel('tcg', '/nonexistent/kvm'), 'tcg');
  assert.throws(() => chooseAccel('kvm', '/nonexistent/kvm'), (e: unknown) => e instanceof UserError && e.exitCode === ExitCode.HostNotReady && /--accel tcg/.test(e.message));
});

test('a device that opens read-write counts as KVM', () => {
  assert.equal(chooseAccel('auto', '/dev/null'), 'kvm');
});

test('stall detection: same RIP and no console output over the samples', () => {
  const stuck = Array.from({ length: 6 }, () => ({ rip: 'fff0', serialBytes: 0 }));
  assert.equal(guestLooksStuck(stuck), true);
  assert.equal(guestLooksStuck(stuck.slice(0, 2)), false, 'too few samples to tell');
  assert.equal(guestLooksStuck([...stuck.slice(0, 5), { rip: 'fff0', serialBytes: 10 }]), false);
  assert.equal(guestLooksStuck([...stuck.slice(0, 5), { rip: '1000', serialBytes: 0 }]), false);
  assert.equal(parseRip('RAX=0000 RBX=0\nRIP=000000000000fff0 RFL=00000002'), '000000000000fff0');
  assert.equal(parseRip('EAX=00000000\nEIP=0000fff0 EFL=00000002'), '0000fff0');
});
