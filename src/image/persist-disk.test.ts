import assert from 'node:assert/strict';
import { test } from 'node:test';
import { planDiskLocation } from './persist-disk.js';

test('the disk lives in the run folder, or with --persist in DATA_DIR/NAME', () => {
  assert.deepEqual(planDiskLocation({ persist: false, dataDir: '/var/lib/snabbvm', name: 'vm1' }, { overlay: '/run/snabbvm/vm1/disk.qcow2' }), {
    path: '/run/snabbvm/vm1/disk.qcow2',
    keep: false,
  });
  assert.deepEqual(planDiskLocation({ persist: true, dataDir: '/var/lib/snabbvm', name: 'vm1' }, { overlay: '/run/snabbvm/vm1/disk.qcow2' }), {
    path: '/var/lib/snabbvm/vm1/disk.qcow2',
    keep: true,
    recordPath: '/var/lib/snabbvm/vm1/disk.json',
  });
});
