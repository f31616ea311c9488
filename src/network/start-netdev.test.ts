import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { readTapCounters } from './start-netdev.js';

test("a netdev port's counters are its tap's, seen from the VM: the tap receives what the VM sends", () => {
  const root = mkdtempSync(path.join(tmpdir(), 'snabbvm-tapstats-'));
  try {
    const stats = path.join(root, 'nd1-r1', 'statistics');
    mkdirSync(stats, { recursive: true });
    for (const [name, value] of Object.entries({ rx_packets: 10, rx_bytes: 1000, tx_packets: 7, tx_bytes: 700, tx_dropped: 2 })) writeFileSync(path.join(stats, name), `${value}\n`);
    assert.deepEqual(readTapCounters('nd1-r1', root), { txPackets: 10, txBytes: 1000, rxPackets: 7, rxBytes: 700, rxDrops: 2 });
    assert.equal(readTapCounters('nd2-r1', root), undefined, 'no tap (yet)');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
