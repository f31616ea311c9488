import { readFileSync } from 'node:fs';
import { runProgram } from '../process/run-program.js';

/** What the container's network looks like before the launcher touches it. */
export interface ContainerNetwork {
  links: LinkFacts[];
  /** routes of the main table, IPv4 and IPv6 */
  routes: RouteFacts[];
  /** nameservers from /etc/resolv.conf */
  resolvers: string[];
  /** ports something in the container already serves on all addresses or on the uplink's */
  listening: { tcp: number[]; udp: number[] };
}

export interface LinkFacts {
  name: string;
  mac: string;
  mtu: number;
  master?: string;
  addresses: AddressFacts[];
}

export interface AddressFacts {
  family: 'inet' | 'inet6';
  local: string;
  prefixlen: number;
  scope: string;
  broadcast?: string;
  label?: string;
  /** flags `ip address add` accepts back: noprefixroute, nodad, ... */
  flags: string[];
  /** set by the kernel or a DHCP/SLAAC client, with lifetimes: not ours to move */
  dynamic: boolean;
}

export interface RouteFacts {
  family: 'inet' | 'inet6';
  /** "default" or a prefix */
  dst: string;
  dev: string;
  gateway?: string;
  protocol?: string;
  scope?: string;
  prefsrc?: string;
  metric?: number;
  pref?: string;
  /** onlink, ... */
  flags: string[];
  /** unicast routes have none; blackhole, unreachable, ... */
  type?: string;
}

/** Address flags that `ip address add` takes back. */
const SETTABLE_ADDRESS_FLAGS = ['noprefixroute', 'nodad', 'home', 'mngtmpaddr', 'optimistic', 'autojoin'];

interface IpAddrJson {
  ifname: string;
  address?: string;
  mtu: number;
  master?: string;
  addr_info?: Record<string, unknown>[];
}

/** `ip -j address show` → links with their addresses. */
export function parseIpAddrJson(json: string): LinkFacts[] {
  return (JSON.parse(json) as IpAddrJson[]).map((l) => {
    const link: LinkFacts = {
      name: l.ifname,
      mac: l.address ?? '',
      mtu: l.mtu,
      addresses: (l.addr_info ?? []).map((a) => {
        const addr: AddressFacts = {
          family: a['family'] as 'inet' | 'inet6',
          local: String(a['local']),
          prefixlen: Number(a['prefixlen']),
          scope: String(a['scope'] ?? 'global'),
          flags: SETTABLE_ADDRESS_FLAGS.filter((f) => a[f] === true),
          dynamic: a['dynamic'] === true || Number(a['valid_life_time'] ?? 4294967295) !== 4294967295,
        };
        if (typeof a['broadcast'] === 'string') addr.broadcast = a['broadcast'];
        if (typeof a['label'] === 'string') addr.label = a['label'];
        return addr;
      }),
    };
    if (l.master !== undefined) link.master = l.master;
    return link;
  });
}

/** `ip -j [-6] route show table main` → routes. */
export function parseIpRouteJson(json: string, family: 'inet' | 'inet6'): RouteFacts[] {
  return (JSON.parse(json) as Record<string, unknown>[]).map((r) => {
    const route: RouteFacts = { family, dst: String(r['dst']), dev: String(r['dev'] ?? ''), flags: (r['flags'] as string[] | undefined) ?? [] };
    if (typeof r['gateway'] === 'string') route.gateway = r['gateway'];
    if (typeof r['protocol'] === 'string') route.protocol = r['protocol'];
    if (typeof r['scope'] === 'string') route.scope = r['scope'];
    if (typeof r['prefsrc'] === 'string') route.prefsrc = r['prefsrc'];
    if (typeof r['metric'] === 'number') route.metric = r['metric'];
    if (typeof r['pref'] === 'string') route.pref = r['pref'];
    if (typeof r['type'] === 'string') route.type = r['type'];
    return route;
  });
}

/** The nameserver lines of a resolv.conf. */
export function parseResolvConf(text: string): string[] {
  return text
    .split('\n')
    .map((line) => line.trim().match(/^nameserver\s+(\S+)/)?.[1])
    .filter((s): s is string => s !== undefined);
}

/**
 * Local ports of /proc/net/{tcp,udp}[6] sockets bound to the wildcard address or to one of the IPv4 `addresses`;
 * for TCP only listening sockets. Several files may be concatenated.
 */
export function parseListeningPorts(procNetText: string, proto: 'tcp' | 'udp', addresses: string[]): number[] {
  const wanted = new Set(addresses.map(procNetHex));
  const ports = new Set<number>();
  for (const line of procNetText.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    const [localHex, portHex] = (fields[1] ?? '').split(':');
    if (localHex === undefined || portHex === undefined) continue;
    if (proto === 'tcp' && fields[3] !== '0A') continue; // 0A: LISTEN
    if (/^0+$/.test(localHex) || wanted.has(localHex.toUpperCase())) ports.add(parseInt(portHex, 16));
  }
  return [...ports].sort((a, b) => a - b);
}

/** An IPv4 address as /proc/net/tcp writes it: little-endian hex. */
function procNetHex(ip: string): string {
  return ip
    .split('.')
    .reverse()
    .map((p) => Number(p).toString(16).padStart(2, '0'))
    .join('')
    .toUpperCase();
}

/** The interface the container reaches the world through: the IPv4 default route's, else eth0 if it exists. */
export function uplinkOf(net: ContainerNetwork): LinkFacts | undefined {
  const defaultRoute = net.routes.find((r) => r.family === 'inet' && r.dst === 'default' && r.dev !== '');
  return net.links.find((l) => l.name === (defaultRoute?.dev ?? 'eth0'));
}

export async function probeContainerNetwork(): Promise<ContainerNetwork> {
  const links = parseIpAddrJson((await runProgram(['ip', '-j', 'address', 'show'])).stdout);
  const routes = [
    ...parseIpRouteJson((await runProgram(['ip', '-j', '-4', 'route', 'show', 'table', 'main'])).stdout, 'inet'),
    ...parseIpRouteJson((await runProgram(['ip', '-j', '-6', 'route', 'show', 'table', 'main'])).stdout, 'inet6'),
  ];
  const read = (file: string) => {
    try {
      return readFileSync(file, 'utf8');
    } catch {
      return '';
    }
  };
  const ownAddresses = links.flatMap((l) => l.addresses.filter((a) => a.family === 'inet' && a.scope === 'global').map((a) => a.local));
  return {
    links,
    routes,
    resolvers: parseResolvConf(read('/etc/resolv.conf')),
    listening: {
      tcp: parseListeningPorts(read('/proc/net/tcp') + read('/proc/net/tcp6'), 'tcp', ownAddresses),
      udp: parseListeningPorts(read('/proc/net/udp') + read('/proc/net/udp6'), 'udp', ownAddresses),
    },
  };
}
