import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { describeSnabbBuild } from './snabb-build.js';

test('the Snabb build is read from the version file beside the binary', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'snabbvm-snabb-build-'));
  const binary = path.join(dir, 'snabb');
  writeFileSync(binary, '#!/bin/sh\n');
  chmodSync(binary, 0o755);
  assert.deepEqual(describeSnabbBuild(binary), { binary, version: 'unknown' });
  writeFileSync(`${binary}.version`, 'v2024.06+snabbvm.a39d7d6505ad\n');
  assert.deepEqual(describeSnabbBuild(binary), { binary, version: 'v2024.06+snabbvm.a39d7d6505ad', patched: true });
  writeFileSync(`${binary}.version`, 'v2024.06\n');
  assert.deepEqual(describeSnabbBuild(binary), { binary, version: 'v2024.06', patched: false });
  // a bare name is looked up on the PATH, as the launcher runs it
  const savedPath = process.env.PATH;
  process.env.PATH = `${dir}:${savedPath}`;
  try {
    assert.equal(describeSnabbBuild('snabb').binary, binary);
  } finally {
    process.env.PATH = savedPath;
  }
  rmSync(dir, { recursive: true });
});
