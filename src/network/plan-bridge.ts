import { hostError, usageError } from '../errors.js';
import type { NicPlan } from '../qemu/qemu-plan.js';
import { uplinkOf, type AddressFacts, type ContainerNetwork, type RouteFacts } from './container-network.js';
import type { GuestNic } from './guest-nic.js';
import { networkNames } from './interface-names.js';
import { contains, parseCidr } from './ipv4.js';
import { macAddress } from './mac-address.js';
import type { NetStep } from './net-steps.js';

/** eth0 in bridge mode, as data: every `ip` command, each with its undo. */
export interface BridgePlan {
  bridge: string;
  tap: string;
  /** the container's interface that joins the bridge (eth0) */
  uplink: string;
  steps: NetStep[];
  nic: NicPlan;
  guestNic: GuestNic;
  /** things the user should know, such as a --ip outside the container's subnet */
  warnings: string[];
}

export interface BridgeInput {
  name: string;
  net: ContainerNetwork;
  /** --ip A.B.C.D/N and --gateway G; without --ip the guest asks for DHCP */
  ip?: string;
  gateway?: string;
}

/**
 * The container's eth0 and the VM's tap in one bridge. The container's addresses and routes move from eth0 to
 * the bridge, which takes eth0's MAC first (so the container's IP keeps answering from the same MAC). Every
 * step registers its undo, so teardown puts back exactly what was there: addresses in their order (the first
 * stays primary), then routes.
 */
export function planBridge({ name, net, ip, gateway }: BridgeInput): BridgePlan {
  const { bridge, tap } = networkNames(name);
  const uplink = uplinkOf(net);
  if (uplink === undefined) throw hostError('--net bridge needs the container\'s eth0 (or a default route), and there is none; use --net user or --net none');
  if (uplink.master !== undefined) throw hostError(`--net bridge: ${uplink.name} is already in bridge ${uplink.master} (left by an earlier run?); remove it with: ip link set ${uplink.name} nomaster`);
  for (const ifname of [bridge, tap]) {
    if (net.links.some((l) => l.name === ifname)) {
      throw hostError(`an interface named ${ifname} already exists (left by an earlier run of VM '${name}'?); remove it with: ip link delete ${ifname}`);
    }
  }

  const moved = uplink.addresses.filter((a) => a.scope !== 'link' && a.scope !== 'host' && !a.dynamic);
  const routes = net.routes.filter((r) => r.dev === uplink.name && r.protocol !== 'kernel' && r.type === undefined);
  const from = uplink.name;
  const steps: NetStep[] = [
    { what: `create bridge ${bridge}`, argv: ['ip', 'link', 'add', bridge, 'address', uplink.mac, 'mtu', String(uplink.mtu), 'type', 'bridge'], undo: ['ip', 'link', 'delete', bridge] },
    { what: `create tap ${tap}`, argv: ['ip', 'tuntap', 'add', 'dev', tap, 'mode', 'tap'], undo: ['ip', 'link', 'delete', tap] },
    { what: `put tap ${tap} in bridge ${bridge}`, argv: ['ip', 'link', 'set', tap, 'mtu', String(uplink.mtu), 'master', bridge, 'up'] },
    { what: `bring up bridge ${bridge}`, argv: ['ip', 'link', 'set', bridge, 'up'] },
    // off the uplink, last first, so the undos put them back first first
    ...[...routes].reverse().map((r) => ({ what: `move route ${r.dst} off ${from}`, argv: routeArgv('delete', r, from), undo: routeArgv('add', r, from) })),
    ...[...moved].reverse().map((a) => ({ what: `move address ${a.local} off ${from}`, argv: addressArgv('delete', a, from), undo: addressArgv('add', a, from) })),
    { what: `put ${from} in bridge ${bridge}`, argv: ['ip', 'link', 'set', from, 'master', bridge], undo: ['ip', 'link', 'set', from, 'nomaster'] },
    ...moved.map((a) => ({ what: `move address ${a.local} to ${bridge}`, argv: addressArgv('add', a, bridge), undo: addressArgv('delete', a, bridge) })),
    ...routes.map((r) => ({ what: `move route ${r.dst} to ${bridge}`, argv: routeArgv('add', r, bridge), undo: routeArgv('delete', r, bridge) })),
  ];

  const mac = macAddress(name, 0);
  const guestNic: GuestNic = { name: 'eth0', mac, dhcp: ip === undefined, addresses: ip === undefined ? [] : [ip], ...(uplink.mtu !== 1500 ? { mtu: uplink.mtu } : {}) };
  const warnings: string[] = [];
  if (ip !== undefined) {
    const address = ip.split('/')[0]!;
    if (net.links.some((l) => l.addresses.some((a) => a.local === address))) {
      throw usageError(`--ip ${ip} is the container's own address; give the VM another one (reserve a range with docker network create --ip-range)`);
    }
    const subnet = parseCidr(ip)!;
    const containerGateway = net.routes.find((r) => r.family === 'inet' && r.dst === 'default' && r.gateway !== undefined)?.gateway;
    const gw = gateway ?? (containerGateway !== undefined && contains(subnet, containerGateway) ? containerGateway : undefined);
    if (gw !== undefined) guestNic.gateway = gw;
    const nameservers = net.resolvers.filter((r) => !r.startsWith('127.') && r !== '::1');
    if (nameservers.length > 0) guestNic.nameservers = nameservers;
    const onLink = moved.some((a) => a.family === 'inet' && contains(parseCidr(`${a.local}/${a.prefixlen}`)!, address));
    if (!onLink) warnings.push(`--ip ${ip} is outside the container's subnets; the VM may not reach the network`);
  }
  return { bridge, tap, uplink: from, steps, nic: { kind: 'tap', mac, ifname: tap }, guestNic, warnings };
}

/** `ip address add|delete` for an address as it was, on another device (labels stay with their device). */
export function addressArgv(op: 'add' | 'delete', a: AddressFacts, dev: string): string[] {
  const argv = ['ip', 'address', op, `${a.local}/${a.prefixlen}`];
  if (op === 'delete') return [...argv, 'dev', dev];
  if (a.broadcast !== undefined) argv.push('broadcast', a.broadcast);
  if (a.scope !== 'global') argv.push('scope', a.scope);
  if (a.label !== undefined && a.label !== dev && a.label.startsWith(`${dev}:`)) argv.push('label', a.label);
  return [...argv, 'dev', dev, ...a.flags];
}

/** `ip route add|delete` for a route as it was, through another device. */
export function routeArgv(op: 'add' | 'delete', r: RouteFacts, dev: string): string[] {
  const argv = ['ip', r.family === 'inet6' ? '-6' : '-4', 'route', op, r.dst];
  if (r.gateway !== undefined) argv.push('via', r.gateway);
  argv.push('dev', dev);
  if (r.protocol !== undefined) argv.push('proto', r.protocol);
  if (r.scope !== undefined) argv.push('scope', r.scope);
  if (r.prefsrc !== undefined) argv.push('src', r.prefsrc);
  if (r.metric !== undefined) argv.push('metric', String(r.metric));
  if (r.pref !== undefined && r.pref !== 'medium') argv.push('pref', r.pref);
  if (r.flags.includes('onlink')) argv.push('onlink');
  return argv;
}
