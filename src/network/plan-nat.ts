import path from 'node:path';
import { hostError } from '../errors.js';
import type { NicPlan } from '../qemu/qemu-plan.js';
import { uplinkOf, type ContainerNetwork } from './container-network.js';
import type { GuestNic } from './guest-nic.js';
import { networkNames } from './interface-names.js';
import { formatCidr, hostAddress, netmask, overlaps, parseCidr, type Ipv4Net } from './ipv4.js';
import { eui64Address, hostInPrefix, ulaPrefix64 } from './ipv6.js';
import { macAddress } from './mac-address.js';
import type { NetStep } from './net-steps.js';

/** eth0 in nat mode, as data: every command, the nft rule set and dnsmasq's argv. */
export interface NatPlan {
  bridge: string;
  tap: string;
  nftTable: string;
  /** the private subnet between the container and the VM, such as 10.0.2.0/24 */
  subnet: string;
  /** the container's address on it: the VM's gateway and DNS server */
  gatewayIp: string;
  /** the VM's address, leased by DHCP to its MAC */
  vmIp: string;
  mtu: number;
  /** the interface whose addresses forward to the VM, when the container has one */
  uplink?: string;
  /** inbound ports on the uplink's addresses that stay with the container */
  keptPorts: { tcp: number[]; udp: number[] };
  /** bridge, tap and the nft table, in order */
  steps: NetStep[];
  nftRuleset: string;
  dnsmasqArgv: string[];
  nic: NicPlan;
  guestNic: GuestNic;
  ipv6: NatIpv6Plan;
}

/**
 * IPv6 on the same inside link: a unique local /64 advertised by dnsmasq (router advertisements only, no DHCPv6),
 * so the guest forms its address by SLAAC. With `egress`, NAT66 out of the uplink and the same inbound ports.
 * Applied after `steps`, and left out when the container's kernel has no IPv6.
 */
export interface NatIpv6Plan {
  /** such as fd12:3456:789a::/64 */
  prefix: string;
  /** the bridge's address: the VM's DNS server over IPv6 */
  gatewayIp: string;
  /** the SLAAC address the VM forms from its MAC (modified EUI-64); inbound ports go to it */
  vmIp: string;
  /** the container has an IPv6 default route and a global address on the uplink: the VM gets a default route, NAT66 and forwarded ports */
  egress: boolean;
  steps: NetStep[];
  /** set with egress */
  nftRuleset?: string;
  /** appended to dnsmasqArgv */
  dnsmasqArgs: string[];
}

/** The VM's address in its subnet, and the container's: as in QEMU's user mode, so both modes look alike. */
const GATEWAY_HOST = 2;
const VM_HOST = 15;

/**
 * The first of 10.0.2.0/24, 10.0.3.0/24, ... 10.0.254.0/24 that overlaps no address or route the container
 * already has; undefined when all do.
 */
export function chooseNatSubnet(taken: Ipv4Net[]): Ipv4Net | undefined {
  for (let third = 2; third <= 254; third++) {
    const candidate: Ipv4Net = { base: (10 * 2 ** 24) + third * 256, prefix: 24 };
    if (!taken.some((t) => overlaps(t, candidate))) return candidate;
  }
  return undefined;
}

/** The IPv4 networks the container uses: its addresses' subnets and its routes (but not the default route). */
export function takenNetworks(net: ContainerNetwork): Ipv4Net[] {
  const fromAddresses = net.links.flatMap((l) => l.addresses.filter((a) => a.family === 'inet').map((a) => parseCidr(`${a.local}/${a.prefixlen}`)));
  const fromRoutes = net.routes.filter((r) => r.family === 'inet' && r.dst !== 'default').map((r) => parseCidr(r.dst));
  return [...fromAddresses, ...fromRoutes].filter((n): n is Ipv4Net => n !== undefined);
}

export interface NatInput {
  name: string;
  net: ContainerNetwork;
  /** the launcher's own ports and --forward-exclude: never forwarded to the VM */
  ownPorts: number[];
  dnsmasqDir: string;
  /** the unprivileged user dnsmasq runs as once it has its sockets (default: nobody) */
  dnsmasqUser?: string;
}

export function planNat({ name, net, ownPorts, dnsmasqDir, dnsmasqUser = 'nobody' }: NatInput): NatPlan {
  const { bridge, tap, nftTable } = networkNames(name);
  for (const ifname of [bridge, tap]) {
    if (net.links.some((l) => l.name === ifname)) {
      throw hostError(`an interface named ${ifname} already exists (left by an earlier run of VM '${name}'?); remove it with: ip link delete ${ifname}`);
    }
  }
  const subnet = chooseNatSubnet(takenNetworks(net));
  if (subnet === undefined) throw hostError('found no free private subnet for nat mode in 10.0.2.0-10.0.254.0/24: the container uses them all; use --net bridge or --net user');
  const gatewayIp = hostAddress(subnet, GATEWAY_HOST);
  const vmIp = hostAddress(subnet, VM_HOST);
  const uplink = uplinkOf(net);
  const mtu = uplink?.mtu ?? 1500;
  const mac = macAddress(name, 0);
  const uplinkAddresses = uplink?.addresses.filter((a) => a.family === 'inet' && a.scope === 'global').map((a) => a.local) ?? [];
  const unique = (ports: number[]) => [...new Set(ports)].sort((a, b) => a - b);
  const keptPorts = { tcp: unique([...ownPorts, ...net.listening.tcp]), udp: unique([...ownPorts, ...net.listening.udp]) };

  const steps: NetStep[] = [
    { what: `create bridge ${bridge}`, argv: ['ip', 'link', 'add', bridge, 'mtu', String(mtu), 'type', 'bridge'], undo: ['ip', 'link', 'delete', bridge] },
    { what: `address bridge ${bridge}`, argv: ['ip', 'address', 'add', `${gatewayIp}/${subnet.prefix}`, 'dev', bridge] },
    { what: `bring up bridge ${bridge}`, argv: ['ip', 'link', 'set', bridge, 'up'] },
    { what: `create tap ${tap}`, argv: ['ip', 'tuntap', 'add', 'dev', tap, 'mode', 'tap'], undo: ['ip', 'link', 'delete', tap] },
    { what: `put tap ${tap} in bridge ${bridge}`, argv: ['ip', 'link', 'set', tap, 'mtu', String(mtu), 'master', bridge, 'up'] },
  ];
  const nftRuleset = renderNatRuleset({ family: 'ip', table: nftTable, bridge, subnet: formatCidr(subnet), vmIp, uplink: uplink?.name, uplinkAddresses, keptPorts });
  steps.push({ what: `load nft table ${nftTable}`, argv: ['nft', '-f', '-'], input: nftRuleset, undo: ['nft', 'delete', 'table', 'ip', nftTable] });

  const plan: NatPlan = {
    bridge,
    tap,
    nftTable,
    subnet: formatCidr(subnet),
    gatewayIp,
    vmIp,
    mtu,
    keptPorts,
    steps,
    nftRuleset,
    dnsmasqArgv: buildDnsmasqArgv({ bridge, subnet, gatewayIp, vmIp, mac, mtu, dnsmasqDir, user: dnsmasqUser }),
    nic: { kind: 'tap', mac, ifname: tap },
    guestNic: { name: 'eth0', mac, dhcp: true, addresses: [], ...(mtu !== 1500 ? { mtu } : {}) },
    ipv6: planNatIpv6({ name, net, bridge, nftTable, mac, mtu, uplinkName: uplink?.name, keptPorts }),
  };
  if (uplink !== undefined) plan.uplink = uplink.name;
  return plan;
}

/** The router lifetime dnsmasq advertises when the VM may route IPv6 out through the container (dnsmasq's default). */
const RA_ROUTER_LIFETIME = 1800;

function planNatIpv6(p: { name: string; net: ContainerNetwork; bridge: string; nftTable: string; mac: string; mtu: number; uplinkName: string | undefined; keptPorts: { tcp: number[]; udp: number[] } }): NatIpv6Plan {
  const prefix64 = ulaPrefix64(p.name);
  const prefix = `${hostInPrefix(prefix64, 0)}/64`;
  const gatewayIp = hostInPrefix(prefix64, GATEWAY_HOST);
  const vmIp = eui64Address(prefix64, p.mac);
  const uplink = p.net.links.find((l) => l.name === p.uplinkName);
  const uplinkAddresses = uplink?.addresses.filter((a) => a.family === 'inet6' && a.scope === 'global').map((a) => a.local) ?? [];
  const egress = uplinkAddresses.length > 0 && p.net.routes.some((r) => r.family === 'inet6' && r.dst === 'default');
  // nodad: dnsmasq binds the address at once, before duplicate address detection would have ended
  const steps: NetStep[] = [{ what: `address bridge ${p.bridge} (IPv6)`, argv: ['ip', '-6', 'address', 'add', `${gatewayIp}/64`, 'dev', p.bridge, 'nodad'] }];
  const plan: NatIpv6Plan = {
    prefix,
    gatewayIp,
    vmIp,
    egress,
    steps,
    dnsmasqArgs: [
      `--listen-address=${gatewayIp}`,
      '--enable-ra',
      `--dhcp-range=${hostInPrefix(prefix64, 0)},ra-only,64,12h`,
      // without a way out, a router lifetime of 0: the guest gets its address but no default route, so it does not
      // try IPv6 first and wait for it to time out
      `--ra-param=${p.bridge},${p.mtu !== 1500 ? `mtu:${p.mtu},` : ''}0,${egress ? RA_ROUTER_LIFETIME : 0}`,
    ],
  };
  if (egress) {
    plan.nftRuleset = renderNatRuleset({ family: 'ip6', table: p.nftTable, bridge: p.bridge, subnet: prefix, vmIp, uplink: p.uplinkName, uplinkAddresses, keptPorts: p.keptPorts });
    steps.push({ what: `load nft table ip6 ${p.nftTable}`, argv: ['nft', '-f', '-'], input: plan.nftRuleset, undo: ['nft', 'delete', 'table', 'ip6', p.nftTable] });
  }
  return plan;
}

/**
 * One nft table of the VM's own per address family, so that teardown is one `nft delete table`: masquerade out of
 * the private subnet, and every inbound TCP and UDP port on the uplink's addresses to the VM, except the kept ones.
 */
export function renderNatRuleset(r: {
  family: 'ip' | 'ip6';
  table: string;
  bridge: string;
  subnet: string;
  vmIp: string;
  uplink: string | undefined;
  uplinkAddresses: string[];
  keptPorts: { tcp: number[]; udp: number[] };
}): string {
  const forward = (proto: 'tcp' | 'udp') => {
    const kept = r.keptPorts[proto];
    const except = kept.length > 0 ? ` ${proto} dport != { ${kept.join(', ')} }` : ` meta l4proto ${proto}`;
    return `\t\tiifname "${r.uplink}" ${r.family} daddr { ${r.uplinkAddresses.join(', ')} }${except} dnat to ${r.vmIp}\n`;
  };
  const forwards = r.uplink !== undefined && r.uplinkAddresses.length > 0 ? forward('tcp') + forward('udp') : '';
  return (
    `table ${r.family} ${r.table} {\n` +
    `\tchain prerouting {\n` +
    `\t\ttype nat hook prerouting priority dstnat; policy accept;\n` +
    forwards +
    `\t}\n` +
    `\tchain postrouting {\n` +
    `\t\ttype nat hook postrouting priority srcnat; policy accept;\n` +
    `\t\t${r.family} saddr ${r.subnet} oifname != "${r.bridge}" masquerade\n` +
    `\t}\n` +
    `}\n`
  );
}

/**
 * dnsmasq on the bridge only: DHCP with a fixed lease for the VM's MAC (the MAC is stable, so is the address),
 * and DNS forwarded to the container's resolvers (it reads /etc/resolv.conf). It logs to stderr, in the
 * foreground, so the launcher supervises it as a child.
 */
export function buildDnsmasqArgv(d: { bridge: string; subnet: Ipv4Net; gatewayIp: string; vmIp: string; mac: string; mtu: number; dnsmasqDir: string; user: string }): string[] {
  const lastHost = hostAddress(d.subnet, 2 ** (32 - d.subnet.prefix) - 2);
  return [
    'dnsmasq',
    '--keep-in-foreground',
    '--log-facility=-',
    '--conf-file=/dev/null',
    '--pid-file',
    '--no-hosts',
    // it opens its sockets and lease file as root, then drops to this user
    `--user=${d.user}`,
    `--interface=${d.bridge}`,
    '--except-interface=lo',
    '--bind-interfaces',
    `--listen-address=${d.gatewayIp}`,
    `--dhcp-range=${d.vmIp},${lastHost},${netmask(d.subnet.prefix)},12h`,
    `--dhcp-host=${d.mac},${d.vmIp}`,
    `--dhcp-option=option:router,${d.gatewayIp}`,
    `--dhcp-option=option:dns-server,${d.gatewayIp}`,
    // sent even when not asked for: not every DHCP client requests the MTU
    ...(d.mtu !== 1500 ? [`--dhcp-option-force=option:mtu,${d.mtu}`] : []),
    '--dhcp-authoritative',
    `--dhcp-leasefile=${path.join(d.dnsmasqDir, 'leases')}`,
  ];
}
