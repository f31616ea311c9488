import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { acquireCacheLock, isLockStale } from './cache-lock.js';

const here = { host: 'h1', pidAlive: (pid: number) => pid === 42 };

test('a lock is stale when its holder is gone: by pid on this host, by heartbeat across hosts', () => {
  assert.equal(isLockStale({ pid: 42, host: 'h1', token: 't' }, 999_999, here, 60_000), false, 'live pid, however old');
  assert.equal(isLockStale({ pid: 43, host: 'h1', token: 't' }, 0, here, 60_000), true, 'dead pid');
  assert.equal(isLockStale({ pid: 42, host: 'other', token: 't' }, 10_000, here, 60_000), false, 'fresh heartbeat elsewhere');
  assert.equal(isLockStale({ pid: 42, host: 'other', token: 't' }, 61_000, here, 60_000), true, 'no heartbeat elsewhere');
  assert.equal(isLockStale(undefined, 61_000, here, 60_000), true);
});

test('a second holder waits until the first releases; a dead holder is taken over', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'snabbvm-lock-'));
  const lock = path.join(dir, 'lock');
  const release1 = await acquireCacheLock(lock, 'x', { pollMs: 20 });
  let second = false;
  const waiting = acquireCacheLock(lock, 'x', { pollMs: 20 }).then((release) => {
    second = true;
    return release;
  });
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(second, false, 'the second waits');
  await release1();
  const release2 = await waiting;
  assert.equal(second, true);
  await release2();
  await release2(); // twice is fine
  assert.equal(existsSync(lock), false);

  // a lock left by a process that no longer exists (pid 2^22 + 1 is above pid_max)
  writeFileSync(lock, JSON.stringify({ pid: 4_194_305, host: `${hostname()} ${readlinkSync('/proc/self/ns/pid')}`, token: 'dead' }));
  const release3 = await acquireCacheLock(lock, 'x', { pollMs: 20 });
  assert.notEqual(JSON.parse(readFileSync(lock, 'utf8')).token, 'dead');
  await release3();
});

test('a lock from another pid namespace (another container) is stale only when its heartbeat stops', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'snabbvm-lock-'));
  const lock = path.join(dir, 'lock');
  // pid 1 is alive here too, but in another namespace it means nothing
  writeFileSync(lock, JSON.stringify({ pid: 1, host: 'other-container pid:[1]', token: 'theirs' }));
  const t0 = Date.now();
  const release = await acquireCacheLock(lock, 'x', { pollMs: 20, staleMs: 300 });
  assert.ok(Date.now() - t0 >= 250, 'waited for the heartbeat to go stale');
  await release();
});
