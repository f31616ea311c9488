import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CleanupStack } from './cleanup-stack.js';

test('unwinds last-in first-out, once, and past a failing step', async () => {
  const order: string[] = [];
  const stack = new CleanupStack();
  stack.defer('a', () => order.push('a'));
  stack.defer('b', () => {
    throw new Error('boom');
  });
  stack.defer('c', async () => order.push('c'));
  await Promise.all([stack.unwind(), stack.unwind()]);
  await stack.unwind();
  assert.deepEqual(order, ['c', 'a']);
  assert.equal(stack.size, 0);
});
