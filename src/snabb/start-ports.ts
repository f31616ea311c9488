import type { VmConfig } from '../config/config.js';
import { ExitCode, UserError } from '../errors.js';
import type { CleanupStack } from '../lifecycle/cleanup-stack.js';
import type { GuestNic } from '../network/guest-nic.js';
import type { RuntimePaths } from '../paths.js';
import type { GuestMemory, NicPlan } from '../qemu/qemu-plan.js';

/** The VM's eth1..N: QEMU's NICs, the guest's addressing, and the guest memory vhost-user needs. */
export interface PortsSetup {
  nics: NicPlan[];
  guestNics: GuestNic[];
  memory: GuestMemory;
}

/** Checks the ports, starts one supervised Snabb per NIC, and registers their teardown. */
export async function startPorts(config: VmConfig, _paths: RuntimePaths, _cleanup: CleanupStack): Promise<PortsSetup> {
  if (config.ports.length > 0) {
    throw new UserError(`ports are not supported yet (${config.ports.join(' ')})`, ExitCode.BadInput);
  }
  return { nics: [], guestNics: [], memory: { kind: 'anonymous' } };
}
