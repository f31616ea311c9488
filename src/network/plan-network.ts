import type { VmConfig } from '../config/config.js';
import type { NicPlan } from '../qemu/qemu-plan.js';
import { macAddress } from './mac-address.js';

/** eth0 for the modes that need nothing from the host: user (QEMU's own NAT) and none. */
export function planUserModeNic(config: Pick<VmConfig, 'name' | 'forwards'>): NicPlan {
  return {
    kind: 'user',
    mac: macAddress(config.name, 0),
    forwards: config.forwards.map((f) => {
      const [proto, host, guest] = f.split(':');
      return { proto: proto as 'tcp' | 'udp', hostPort: Number(host), guestPort: Number(guest) };
    }),
  };
}
