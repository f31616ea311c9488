import { createHash } from 'node:crypto';

/** Linux interface names hold at most 15 characters. */
const IFNAMSIZ = 15;

/**
 * Names of what a VM's eth0 adds to the container: br-<name> and tap-<name>, or a hash of the name when it
 * is too long; the nft table is snabbvm-<name>. Distinct per VM, so two VMs in one namespace don't collide.
 */
export function networkNames(vmName: string): { bridge: string; tap: string; nftTable: string } {
  const short = vmName.length <= IFNAMSIZ - 'tap-'.length ? vmName : createHash('sha256').update(vmName).digest('hex').slice(0, 8);
  return { bridge: `br-${short}`, tap: `tap-${short}`, nftTable: `snabbvm-${vmName}` };
}

/**
 * The tap of a netdev: port (VM NIC nicIndex): nd<index>-<name>, or a hash of the name when it is too long, so two
 * VMs in one namespace don't collide.
 */
export function netdevTapName(vmName: string, nicIndex: number): string {
  const prefix = `nd${nicIndex}-`;
  const short = vmName.length <= IFNAMSIZ - prefix.length ? vmName : createHash('sha256').update(vmName).digest('hex').slice(0, 8);
  return `${prefix}${short}`;
}
