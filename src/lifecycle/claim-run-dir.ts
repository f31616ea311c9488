import { closeSync, constants, existsSync, fstatSync, ftruncateSync, openSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync, writeSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ExitCode, hostError, usageError, UserError } from '../errors.js';
import { log } from '../log.js';
import type { RuntimePaths } from '../paths.js';
import { ProgramError, runProgram } from '../process/run-program.js';
import { replayUndoJournal, type CleanupStack } from './cleanup-stack.js';

export interface LauncherState {
  pid: number;
  name: string;
  startedAt: string;
  accel?: string;
  /** why --accel auto runs under TCG: KVM missing or broken */
  accelFallback?: string;
  [key: string]: unknown;
}

export function readState(paths: RuntimePaths): LauncherState | undefined {
  try {
    return JSON.parse(readFileSync(paths.stateFile, 'utf8')) as LauncherState;
  } catch {
    return undefined;
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** flock(1)'s exit status when the lock is held by someone else (-E). */
const LOCK_HELD = 75;

/**
 * Makes the VM's run folder and holds its lock file locked (flock) for the whole run, so two launchers of the
 * same VM can't both use it: the second one exits 6 and touches nothing. The lock file also marks the folder as
 * the launcher's own: a folder that is not empty and has none is refused (exit 2), so `--run-dir /u` can never
 * remove the user's files. A folder left by a launcher that was killed is taken over: its QEMU, its tmux server
 * and what it changed in the network (from its undo journal) go first. At teardown only the launcher's own files
 * go, then the folder if that left it empty (never recursively), then the lock.
 */
export async function claimRunDir(paths: RuntimePaths, name: string, cleanup: CleanupStack): Promise<void> {
  const ours = existsSync(paths.runDir) && checkRunDirIsOurs(paths);
  await mkdir(paths.runDir, { recursive: true, mode: 0o700 });
  const lock = await lockRunDir(paths, name);
  cleanup.defer(`remove ${paths.runDir}`, () => {
    removeOwnFiles(paths);
    rmSync(paths.lockFile, { force: true });
    try {
      rmdirSync(paths.runDir); // never recursive: whatever else is there is not the launcher's
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOTEMPTY' || code === 'EEXIST') log.warn(`left ${paths.runDir} in place: it holds files snabbvm did not make`);
    }
    closeSync(lock); // the lock goes last, once the folder is gone
  });
  if (ours) await takeOver(paths, name);
  cleanup.journalTo(paths.undoJournal);
  await writeState(paths, { pid: process.pid, name, startedAt: new Date().toISOString() });
}

/**
 * true when the folder holds a previous run of a launcher (its lock file), false when it is empty; refuses
 * (exit 2) a file, a folder of someone else's files, and a folder that holds other VMs' run folders.
 */
function checkRunDirIsOurs(paths: RuntimePaths): boolean {
  const dir = paths.runDir;
  if (!statSync(dir).isDirectory()) throw usageError(`--run-dir ${dir} is not a folder; give a new or empty folder, or leave --run-dir out`);
  const entries = readdirSync(dir);
  const otherVms = entries.filter((e) => existsSync(path.join(dir, e, path.basename(paths.lockFile))));
  if (otherVms.length > 0) {
    throw usageError(`--run-dir ${dir} holds the run folders of other VMs (${otherVms.join(', ')}); give each VM a folder of its own, such as ${path.join(dir, otherVms.includes('vm') ? 'vm2' : 'vm')}`);
  }
  if (entries.includes(path.basename(paths.lockFile))) return true;
  if (entries.length > 0) {
    throw usageError(`--run-dir ${dir} is not empty and was not made by snabbvm; the launcher removes its run folder when the VM ends, so give it a new or empty folder, or leave --run-dir out`);
  }
  return false;
}

/** Locks paths.lockFile (flock on an fd the launcher keeps open: the kernel drops it when the launcher dies, however it dies). */
async function lockRunDir(paths: RuntimePaths, name: string): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const fd = openSync(paths.lockFile, constants.O_RDWR | constants.O_CREAT, 0o600);
    try {
      await runProgram(['flock', '--nonblock', '--exclusive', '--conflict-exit-code', String(LOCK_HELD), '3'], { fd3: fd });
    } catch (err) {
      closeSync(fd);
      if (err instanceof ProgramError && err.exit?.code === LOCK_HELD) {
        const pid = Number.parseInt(readFileSync(paths.lockFile, 'utf8'), 10);
        throw new UserError(`a VM named '${name}' is already running (pid ${Number.isNaN(pid) ? 'unknown' : pid}, run folder ${paths.runDir}); stop it first (snabbvm stop --name ${name}) or give this one another --name`, ExitCode.AlreadyRunning);
      }
      if (err instanceof ProgramError && err.notFound) throw hostError('flock is not installed; install util-linux');
      throw err;
    }
    // The launcher that held it may have removed the file just before it let go: then lock the new one.
    let current: number | undefined;
    try {
      current = statSync(paths.lockFile).ino;
    } catch {}
    if (current === fstatSync(fd).ino) {
      ftruncateSync(fd, 0);
      writeSync(fd, `${process.pid}\n`, 0);
      return fd;
    }
    closeSync(fd);
    if (attempt >= 10) throw hostError(`could not lock ${paths.lockFile}: it keeps being replaced`);
    await mkdir(paths.runDir, { recursive: true, mode: 0o700 });
  }
}

/** The folder's own entries, as src/paths.ts names them (and the state file's temporary). */
function ownEntries(paths: RuntimePaths): string[] {
  const names = Object.values(paths)
    .filter((p): p is string => typeof p === 'string' && path.dirname(p) === paths.runDir && p !== paths.lockFile)
    .map((p) => path.basename(p));
  // the --disk disks, as many as that run had (paths.extraDisk(n))
  const extraDisks = readdirSync(paths.runDir).filter((e) => /^disk\d+\.qcow2$/.test(e));
  return [...names, ...extraDisks, `${path.basename(paths.stateFile)}.tmp`];
}

function removeOwnFiles(paths: RuntimePaths): void {
  for (const entry of ownEntries(paths)) rmSync(path.join(paths.runDir, entry), { recursive: true, force: true });
}

/** Clears what a launcher that was killed (no teardown) left: its QEMU, its tmux server, its network changes, its files. */
async function takeOver(paths: RuntimePaths, name: string): Promise<void> {
  const previous = readState(paths);
  if (!existsSync(paths.stateFile) && readdirSync(paths.runDir).length <= 1) return; // only our lock file: nothing left behind
  log.warn(`VM '${name}': the launcher${previous ? ` (pid ${previous.pid})` : ''} that ran it last was killed without cleaning up; taking over ${paths.runDir}`);
  await killStaleQemu(paths);
  if (existsSync(paths.tmuxSocket)) await runProgram(['tmux', '-S', paths.tmuxSocket, 'kill-server']).catch(() => {});
  await replayUndoJournal(paths.undoJournal);
  removeOwnFiles(paths);
}

/** The QEMU of the killed launcher dies with it (parent-death signal), but may not have finished dying. */
async function killStaleQemu(paths: RuntimePaths): Promise<void> {
  let pid: number;
  try {
    pid = Number.parseInt(readFileSync(paths.qemuPidFile, 'utf8'), 10);
  } catch {
    return;
  }
  if (!(pid > 0)) return;
  const isThatQemu = () => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(paths.qemuPidFile);
    } catch {
      return false;
    }
  };
  if (!isThatQemu()) return;
  process.kill(pid, 'SIGKILL');
  for (let i = 0; i < 100 && isThatQemu(); i++) await sleep(50);
}

export async function writeState(paths: RuntimePaths, state: LauncherState): Promise<void> {
  const tmp = `${paths.stateFile}.tmp`;
  await writeFile(tmp, JSON.stringify(state, null, 2));
  await rename(tmp, paths.stateFile);
}
