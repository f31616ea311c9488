import { createHash } from 'node:crypto';

/**
 * A locally administered unicast MAC for NIC `index` of VM `name`: stable across restarts of the same VM,
 * distinct across VMs. The last byte is the NIC index, so eth0..ethN read in order.
 */
export function macAddress(name: string, index: number): string {
  const h = createHash('sha256').update(`snabbvm:${name}`).digest();
  const bytes = [(h[0]! & 0xfc) | 0x02, h[1]!, h[2]!, h[3]!, h[4]!, index & 0xff];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}
