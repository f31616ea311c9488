import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { hostError } from '../errors.js';
import type { RuntimePaths } from '../paths.js';
import type { CleanupStack } from './cleanup-stack.js';

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

/**
 * Makes the VM's run folder, refusing when a live launcher of the same name owns it. A folder left by a
 * launcher that died is cleared. The folder and everything in it go at teardown.
 */
export async function claimRunDir(paths: RuntimePaths, name: string, cleanup: CleanupStack): Promise<void> {
  const previous = readState(paths);
  if (previous && previous.pid !== process.pid && isAlive(previous.pid)) {
    throw hostError(`a VM named '${name}' is already running (launcher pid ${previous.pid}); give this one another --name`);
  }
  if (existsSync(paths.runDir)) await rm(paths.runDir, { recursive: true, force: true });
  await mkdir(paths.runDir, { recursive: true, mode: 0o700 });
  cleanup.defer(`remove ${paths.runDir}`, () => rm(paths.runDir, { recursive: true, force: true }));
  await writeState(paths, { pid: process.pid, name, startedAt: new Date().toISOString() });
}

export async function writeState(paths: RuntimePaths, state: LauncherState): Promise<void> {
  const tmp = `${paths.stateFile}.tmp`;
  await writeFile(tmp, JSON.stringify(state, null, 2));
  await rename(tmp, paths.stateFile);
}
