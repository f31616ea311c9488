import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { readlinkSync } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { log } from '../log.js';

/**
 * Where pids mean something: the host name and the pid namespace. Two containers sharing a cache volume have
 * different pid namespaces (both launchers may be pid 1), so a pid is only checked within the same one.
 */
function pidScope(): string {
  let ns = '';
  try {
    ns = readlinkSync('/proc/self/ns/pid');
  } catch {}
  return `${hostname()} ${ns}`.trim();
}

/** What a lock file holds: who took it, and in which pid namespace. */
export interface LockOwner {
  pid: number;
  host: string;
  token: string;
}

export interface CacheLockOptions {
  /** the holder refreshes the lock file's mtime this often */
  heartbeatMs: number;
  /** a lock whose mtime is older than this is stale (its holder is gone, maybe in another container) */
  staleMs: number;
  /** how often a waiter looks again */
  pollMs: number;
  /** stops waiting (a stop signal): throws signal.reason */
  signal?: AbortSignal;
}

const DEFAULTS: CacheLockOptions = { heartbeatMs: 10_000, staleMs: 60_000, pollMs: 250 };

/**
 * Whether a lock's holder is gone. On the same host the pid says it for sure; across hosts (containers with their
 * own pid namespaces sharing a cache volume) only the holder's heartbeat does. Pure.
 */
export function isLockStale(owner: LockOwner | undefined, ageMs: number, here: { host: string; pidAlive: (pid: number) => boolean }, staleMs: number): boolean {
  if (owner === undefined) return ageMs > staleMs; // unreadable: half-written, or not ours
  if (owner.host === here.host) return !here.pidAlive(owner.pid);
  return ageMs > staleMs;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function parseOwner(text: string): LockOwner | undefined {
  try {
    const o = JSON.parse(text) as LockOwner;
    return typeof o.pid === 'number' && typeof o.host === 'string' ? o : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Takes an exclusive lock on a cache entry: a file created with O_EXCL holding the owner, no flock (which NFS and
 * some volume drivers don't honour). Waits while another live launcher holds it, and takes over a stale one.
 * Returns release(), which is safe to call twice.
 */
export async function acquireCacheLock(lockPath: string, what: string, options: Partial<CacheLockOptions> = {}): Promise<() => Promise<void>> {
  const opts = { ...DEFAULTS, ...options };
  const me: LockOwner = { pid: process.pid, host: pidScope(), token: randomBytes(8).toString('hex') };
  let told = false;
  for (;;) {
    try {
      await writeFile(lockPath, JSON.stringify(me), { flag: 'wx' });
      break;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') {
        // another launcher removed the empty entry folder just now
        await mkdir(path.dirname(lockPath), { recursive: true });
        continue;
      }
      if (code !== 'EEXIST') throw err;
    }
    const holder = await readLock(lockPath);
    if (holder === 'gone') continue;
    if (isLockStale(holder.owner, Date.now() - holder.mtimeMs, { host: me.host, pidAlive }, opts.staleMs)) {
      await breakStaleLock(lockPath, holder.text);
      continue;
    }
    if (!told) {
      log.info(`waiting for another snabbvm (pid ${holder.owner?.pid ?? '?'}${holder.owner && holder.owner.host !== me.host ? ` in another container or host: ${holder.owner.host}` : ''}) that is preparing ${what}`);
      told = true;
    }
    await sleep(opts.pollMs, undefined, { signal: opts.signal }).catch((err: unknown) => {
      throw opts.signal?.aborted ? opts.signal.reason : err;
    });
  }

  const heartbeat = setInterval(() => {
    const now = new Date();
    utimes(lockPath, now, now).catch(() => {});
  }, opts.heartbeatMs);
  heartbeat.unref();
  let released = false;
  return async () => {
    if (released) return;
    released = true;
    clearInterval(heartbeat);
    // only remove the lock if it is still ours
    const holder = await readLock(lockPath);
    if (holder !== 'gone' && holder.owner?.token === me.token) await rm(lockPath, { force: true });
  };
}

async function readLock(lockPath: string): Promise<{ owner: LockOwner | undefined; text: string; mtimeMs: number } | 'gone'> {
  try {
    const [text, st] = await Promise.all([readFile(lockPath, 'utf8'), stat(lockPath)]);
    return { owner: parseOwner(text), text, mtimeMs: st.mtimeMs };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'gone';
    throw err;
  }
}

/**
 * Two waiters may find the same stale lock. Each renames it aside first (only one rename wins), then checks it
 * renamed the stale one and not a fresh lock the other waiter just made; if not, it puts that one back.
 */
async function breakStaleLock(lockPath: string, staleText: string): Promise<void> {
  const aside = `${lockPath}.stale-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await rename(lockPath, aside);
  } catch {
    return; // someone else took it away first
  }
  const text = await readFile(aside, 'utf8').catch(() => '');
  if (text === staleText) {
    log.info(`took over a stale lock ${lockPath} (its holder is gone)`);
    await rm(aside, { force: true });
  } else {
    await rename(aside, lockPath).catch(() => rm(aside, { force: true }));
  }
}
