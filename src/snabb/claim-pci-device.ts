import { existsSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { hostError } from '../errors.js';
import type { CleanupStack } from '../lifecycle/cleanup-stack.js';
import { isAlive } from '../lifecycle/claim-run-dir.js';
import { log } from '../log.js';
import { ProgramError, runProgram } from '../process/run-program.js';
import { pciDevicePath } from './pci-device.js';

/** Where launchers record which PCI devices they use: one file per address, holding the owner. */
export const PCI_LOCK_DIR = '/run/snabbvm/pci';

interface LockOwner {
  pid: number;
  name: string;
}

/**
 * Records that this launcher uses the device, refusing (exit 4) when a live snabbvm already does. A lock left
 * by a launcher that died is taken over. The lock goes at teardown.
 */
export function claimPciDevice(address: string, vmName: string, lockDir: string, cleanup: CleanupStack): void {
  mkdirSync(lockDir, { recursive: true });
  const file = path.join(lockDir, `${address}.lock`);
  const me: LockOwner = { pid: process.pid, name: vmName };
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, JSON.stringify(me), { flag: 'wx' });
      cleanup.defer(`release PCI device ${address}`, () => unlinkSync(file));
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let owner: LockOwner | undefined;
    try {
      owner = JSON.parse(readFileSync(file, 'utf8')) as LockOwner;
    } catch {}
    if (owner && owner.pid !== process.pid && isAlive(owner.pid)) {
      throw hostError(`PCI device ${address} is already used by the snabbvm VM '${owner.name}' (launcher pid ${owner.pid}); give each VM its own ports`);
    }
    try {
      unlinkSync(file); // stale: its launcher is gone
    } catch {}
  }
  throw hostError(`PCI device ${address}: could not take the lock ${file}`);
}

/**
 * Snabb holds an exclusive flock on the device's BAR (resource0) while it drives it, so a Snabb in another
 * container or outside snabbvm shows here. Exit 4 when the device is taken.
 */
export async function checkNotDrivenBySnabb(sysfsRoot: string, address: string): Promise<void> {
  const bar = path.join(pciDevicePath(sysfsRoot, address), 'resource0');
  if (!existsSync(bar)) return;
  try {
    await runProgram(['flock', '--nonblock', '--conflict-exit-code', '75', bar, 'true']);
  } catch (err) {
    if (err instanceof ProgramError && err.exit?.code === 75) {
      throw hostError(`PCI device ${address} is in use by another Snabb process (its ${bar} is locked); stop that one first`);
    }
    if (err instanceof ProgramError && err.notFound) return; // no util-linux flock: the lock files still protect
    throw err;
  }
}

/**
 * At teardown, gives the device back to the kernel driver it had when the launcher started (Snabb unbinds it).
 * Registered before Snabb starts, so it runs after Snabb has stopped.
 */
export function deferRebind(sysfsRoot: string, address: string, driver: string | undefined, cleanup: CleanupStack): void {
  if (driver === undefined || driver === 'vfio-pci') return;
  cleanup.defer(`give ${address} back to ${driver}`, () => rebindKernelDriver(sysfsRoot, address, driver));
}

export function rebindKernelDriver(sysfsRoot: string, address: string, driver: string): void {
  if (existsSync(path.join(pciDevicePath(sysfsRoot, address), 'driver'))) return; // still (or again) bound
  try {
    writeFileSync(path.join(sysfsRoot, 'bus/pci/drivers', driver, 'bind'), address);
    log.info(`gave PCI device ${address} back to the kernel driver ${driver}`);
  } catch (err) {
    log.warn(`could not give PCI device ${address} back to ${driver} (${(err as NodeJS.ErrnoException).code}); on the host: echo ${address} > /sys/bus/pci/drivers/${driver}/bind`);
  }
}
