import type { VmConfig } from '../config/config.js';
import type { CleanupStack } from '../lifecycle/cleanup-stack.js';
import type { GuestNic } from '../network/guest-nic.js';
import type { RuntimePaths } from '../paths.js';

/**
 * Validates the user-data and writes the cloud-init seed image; returns its path, or undefined when the VM
 * gets no seed.
 */
export async function writeSeed(
  _config: VmConfig,
  _paths: RuntimePaths,
  _guestNics: GuestNic[],
  _cleanup: CleanupStack,
): Promise<string | undefined> {
  return undefined;
}
