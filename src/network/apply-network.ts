import type { VmConfig } from '../config/config.js';
import { ExitCode, UserError } from '../errors.js';
import type { CleanupStack } from '../lifecycle/cleanup-stack.js';
import type { RuntimePaths } from '../paths.js';
import type { NicPlan } from '../qemu/qemu-plan.js';
import type { GuestNic } from './guest-nic.js';
import { macAddress } from './mac-address.js';
import { planUserModeNic } from './plan-network.js';

/** eth0 as the chosen --net mode makes it: QEMU's NIC, and how the guest configures it. */
export interface NetworkSetup {
  nic?: NicPlan;
  guestNic?: GuestNic;
}

/**
 * Sets up eth0's side in the container (bridge, tap, dnsmasq, NAT rules) and registers its teardown.
 * Ports the launcher itself serves (VNC, web) are passed so nat mode does not forward them to the VM.
 */
export async function applyNetwork(
  config: VmConfig,
  _paths: RuntimePaths,
  _cleanup: CleanupStack,
  _ownPorts: number[],
): Promise<NetworkSetup> {
  switch (config.net) {
    case 'none':
      return {};
    case 'user':
      return { nic: planUserModeNic(config), guestNic: { name: 'eth0', mac: macAddress(config.name, 0), dhcp: true, addresses: [] } };
    default:
      throw new UserError(`--net ${config.net} is not supported yet; use --net user or --net none`, ExitCode.Usage);
  }
}
