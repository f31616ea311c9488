import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hidePasswords } from '../log.js';
import { formatBytes, formatDuration, renderProgressLine } from './progress.js';

test('a plain progress line has bytes, percentage, rate and ETA', () => {
  assert.equal(renderProgressLine('downloading u', 100 * 2 ** 20, 400 * 2 ** 20, 10), 'downloading u: 100 MiB of 400 MiB (25%), 10.0 MiB/s, ETA 30 s');
  assert.equal(renderProgressLine('downloading u', 2 ** 20, undefined, 0), 'downloading u: 1.0 MiB');
  // a resumed download's rate counts only this run's bytes
  assert.match(renderProgressLine('d', 300 * 2 ** 20, 400 * 2 ** 20, 10, 200 * 2 ** 20), /10\.0 MiB\/s, ETA 10 s/);
});

test('sizes and durations read well', () => {
  assert.equal(formatBytes(1536 * 2 ** 20), '1.5 GiB');
  assert.equal(formatBytes(512), '512 B');
  assert.equal(formatDuration(200), '3 min 20 s');
  assert.equal(formatDuration(3900), '1 h 5 min');
});

test('a password in a URL is hidden wherever a message quotes it', () => {
  assert.equal(hidePasswords('downloading https://mirror:s%40cret@example.com/a.qcow2: 1 MiB'), 'downloading https://mirror:***@example.com/a.qcow2: 1 MiB');
  assert.equal(hidePasswords('from http://u:p@h:8080/x to http://h/y'), 'from http://u:***@h:8080/x to http://h/y');
  // a user name alone is often a token (issue 15 item 8): hidden too; an @ later in the path: unchanged
  assert.equal(hidePasswords('https://token@example.com/a and https://example.com/a@b'), 'https://***@example.com/a and https://example.com/a@b');
});
