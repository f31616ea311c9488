import type { GuestNic } from './guest-nic.js';
import type { NetStep } from './net-steps.js';
import type { NicPlan } from '../qemu/qemu-plan.js';

/** What the launcher reads of a container interface before it joins it to the VM (`ip -j link show`). */
export interface NetdevLink {
  name: string;
  mac: string;
  mtu: number;
  /** administratively up: containerlab renames, sets the MAC, then brings it up, so up means ready */
  up: boolean;
}

/** One netdev: port as data: the tap, the tc commands of both directions, QEMU's NIC and the guest's. */
export interface NetdevPortPlan {
  ifname: string;
  tap: string;
  mac: string;
  mtu: number;
  /** make the tap and redirect everything it receives (what the VM sends) out of the interface; undone by deleting the tap */
  tapSteps: NetStep[];
  /** the ingress qdisc on the container's interface: the only change to it, undone by `undo` */
  interfaceQdisc: NetStep & { undo: string[] };
  /** then everything the interface receives goes out of the tap, to the VM */
  interfaceRedirect: NetStep;
  nic: NicPlan;
  guestNic: GuestNic;
}

/**
 * Everything received on `from` leaves through `to`, unchanged: a u32 filter that matches every frame (matchall
 * would do the same, but cls_matchall is missing from some kernels; u32 is in all of them, and vrnetlab uses it).
 */
export function redirectArgv(from: string, to: string): string[] {
  return ['tc', 'filter', 'add', 'dev', from, 'parent', 'ffff:', 'protocol', 'all', 'u32', 'match', 'u8', '0', '0', 'action', 'mirred', 'egress', 'redirect', 'dev', to];
}

/**
 * The VM NIC `nicName` on the container's interface `link`, through tap `tap`: tc mirred redirects in both
 * directions, as vrnetlab does, so every frame passes (LLDP, LACP, STP, VLAN tags, jumbo frames up to the
 * interface's MTU), which a Linux bridge would not promise. The VM's NIC takes the interface's MAC (unless `mac`
 * is given) and its MTU, so the lab sees the addresses its topology declares. Pure.
 */
export function planNetdevPort(input: { nicName: string; link: NetdevLink; tap: string; mac?: string; addresses: string[] }): NetdevPortPlan {
  const { link, tap } = input;
  const mac = input.mac ?? link.mac;
  const mtu = String(link.mtu);
  return {
    ifname: link.name,
    tap,
    mac,
    mtu: link.mtu,
    tapSteps: [
      { what: `create tap ${tap}`, argv: ['ip', 'tuntap', 'add', 'dev', tap, 'mode', 'tap'], undo: ['ip', 'link', 'delete', tap] },
      { what: `set tap ${tap}'s MTU to ${mtu} and bring it up`, argv: ['ip', 'link', 'set', 'dev', tap, 'mtu', mtu, 'up'] },
      { what: `add an ingress qdisc to ${tap}`, argv: ['tc', 'qdisc', 'add', 'dev', tap, 'ingress'] },
      { what: `redirect what ${tap} receives to ${link.name}`, argv: redirectArgv(tap, link.name) },
    ],
    interfaceQdisc: { what: `add an ingress qdisc to ${link.name}`, argv: ['tc', 'qdisc', 'add', 'dev', link.name, 'ingress'], undo: ['tc', 'qdisc', 'del', 'dev', link.name, 'ingress'] },
    interfaceRedirect: { what: `redirect what ${link.name} receives to ${tap}`, argv: redirectArgv(link.name, tap) },
    nic: { kind: 'tap', mac, ifname: tap, mtu: link.mtu },
    guestNic: {
      name: input.nicName,
      mac,
      dhcp: input.addresses.includes('dhcp'),
      addresses: input.addresses.filter((a) => a !== 'dhcp'),
      ...(link.mtu !== 1500 ? { mtu: link.mtu } : {}),
    },
  };
}

/** `ip -j link show dev NAME` → the facts planNetdevPort needs. */
export function parseNetdevLink(json: string): NetdevLink {
  const [l] = JSON.parse(json) as { ifname: string; address: string; mtu: number; flags: string[] }[];
  if (l === undefined) throw new Error('ip -j link show printed no interface');
  return { name: l.ifname, mac: l.address.toLowerCase(), mtu: l.mtu, up: l.flags.includes('UP') };
}

/** `tc -j qdisc show dev NAME` → the kind of its ingress-side qdisc (ingress or clsact), if it has one. */
export function parseIngressQdisc(json: string): string | undefined {
  const qdiscs = JSON.parse(json || '[]') as { kind: string }[];
  return qdiscs.find((q) => q.kind === 'ingress' || q.kind === 'clsact')?.kind;
}
