import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatSize, parseSize } from './size.js';

test('sizes in binary units', () => {
  assert.equal(parseSize('2G'), 2 * 2 ** 30);
  assert.equal(parseSize('2GiB'), 2 * 2 ** 30);
  assert.equal(parseSize('2gb'), 2 * 2 ** 30);
  assert.equal(parseSize('512', 'M'), 512 * 2 ** 20);
  assert.equal(parseSize('512'), 512);
  assert.equal(parseSize('12XB'), undefined);
  assert.equal(parseSize('-1G'), undefined);
  assert.equal(formatSize(10 * 2 ** 30), '10G');
  assert.equal(formatSize(1.5 * 2 ** 30), '1.5G');
});
