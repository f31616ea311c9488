import assert from 'node:assert/strict';
import { test } from 'node:test';
import { macAddress } from './mac-address.js';

test('MACs are locally administered unicast, stable per name, distinct across names, indexed per NIC', () => {
  const a0 = macAddress('vm1', 0);
  assert.match(a0, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
  const first = parseInt(a0.slice(0, 2), 16);
  assert.equal(first & 0x02, 0x02, 'locally administered');
  assert.equal(first & 0x01, 0, 'unicast');
  assert.equal(macAddress('vm1', 0), a0);
  assert.notEqual(macAddress('vm2', 0), a0);
  assert.equal(macAddress('vm1', 3).slice(0, 14), a0.slice(0, 14));
  assert.ok(macAddress('vm1', 3).endsWith(':03'));
});
