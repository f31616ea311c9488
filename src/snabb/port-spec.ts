import { isIPv4, isIPv6 } from 'node:net';
import path from 'node:path';
import { inputError, ProblemsError, type UserError } from '../errors.js';

/** What Snabb does to one VM NIC's traffic: the snabbnfv port options. */
export interface TrafficOptions {
  /** 802.1Q tag added on the way out of the VM, required and stripped on the way in */
  vlan?: number;
  /** pcap-filter expressions: ingress is what reaches the VM, egress what leaves it */
  ingress?: string;
  egress?: string;
  /** rate limits in Gbit/s: rx toward the VM, tx from it */
  rxPolice?: number;
  txPolice?: number;
}

/** How the guest sees the NIC. */
export interface GuestOptions {
  /** a unicast MAC, lower case; derived from the VM name when not given */
  mac?: string;
  /** static addresses with prefix length, or 'dhcp' (ip= may repeat); none leaves the NIC unconfigured */
  addresses: string[];
}

/**
 * One VM NIC (eth1, eth2, ...) as given on the command line:
 * - pci: an Intel 82599 port driven by a Snabb the launcher runs;
 * - soft: a Snabb software switch the launcher runs, with no NIC, linking the VM to another vhost-user socket
 *   (`peer`, such as another VM's `vhost-user:` socket);
 * - vhost-user: a socket served by QEMU for a backend that runs elsewhere (Snabb, OVS-DPDK, VPP);
 * - netdev: an interface of the container (containerlab's eth1..N), joined to a tap of the VM by tc redirects, no Snabb.
 */
export type PortSpec =
  | ({ kind: 'pci'; text: string; pci: string } & TrafficOptions & GuestOptions)
  | ({ kind: 'soft'; text: string; peer: string } & TrafficOptions & GuestOptions)
  | ({ kind: 'vhost-user'; text: string; socket: string } & GuestOptions)
  | ({ kind: 'netdev'; text: string; ifname: string } & GuestOptions);

const TRAFFIC_KEYS = ['vlan', 'mac', 'ip', 'rx_police', 'tx_police', 'ingress', 'egress'] as const;
const VALID_KEYS = {
  pci: TRAFFIC_KEYS,
  soft: ['peer', ...TRAFFIC_KEYS],
  'vhost-user': ['mac', 'ip'],
  netdev: ['mac', 'ip'],
} as const;

const USAGE =
  'a port is <pci address>[,vlan=N][,mac=M][,ip=A/N][,rx_police=Gbps][,tx_police=Gbps][,ingress=PCAP][,egress=PCAP], ' +
  'soft,peer=SOCKET[,...the same keys], vhost-user:SOCKET[,mac=M][,ip=A/N], or netdev:IFNAME[,mac=M][,ip=A/N]';

/** 0000:05:00.0 or 05:00.0 → 0000:05:00.0 (lower case); undefined when malformed. */
export function normalizePciAddress(text: string): string | undefined {
  const m = /^(?:([0-9a-f]{4}):)?([0-9a-f]{2}):([0-1][0-9a-f])\.([0-7])$/i.exec(text);
  if (!m) return undefined;
  return `${m[1] ?? '0000'}:${m[2]}:${m[3]}.${m[4]}`.toLowerCase();
}

/** Parses every port spec, collecting every problem (exit 3) before it reports. */
export function parsePortSpecs(texts: readonly string[]): PortSpec[] {
  const { specs, problems } = checkPortSpecs(texts);
  if (problems.length > 0) throw new ProblemsError(problems);
  return specs;
}

/** The problems of the port specs, for config validation to report with the rest. */
export function validatePortSpecs(texts: readonly string[]): UserError[] {
  return checkPortSpecs(texts).problems;
}

function checkPortSpecs(texts: readonly string[]): { specs: PortSpec[]; problems: UserError[] } {
  const problems: UserError[] = [];
  const specs: PortSpec[] = [];
  texts.forEach((text, i) => {
    const where = `port ${i + 1} '${text}'`;
    const report = (msg: string) => problems.push(inputError(`${where}: ${msg}`));
    const spec = parsePortSpec(text, report);
    if (spec) specs.push(spec);
  });
  problems.push(...findDuplicates(specs).map((msg) => inputError(msg)));
  return { specs, problems };
}

/** One spec; problems go to report, and the result is undefined when any was found. */
export function parsePortSpec(text: string, report: (msg: string) => void): PortSpec | undefined {
  let failed = false;
  const fail = (msg: string) => {
    failed = true;
    report(msg);
  };
  const [head = '', ...pairs] = text.split(',');

  let spec: PortSpec;
  if (head.startsWith('vhost-user:')) {
    const socket = head.slice('vhost-user:'.length);
    checkSocketPath(socket, 'vhost-user socket', fail);
    spec = { kind: 'vhost-user', text, socket: path.normalize(socket), addresses: [] };
  } else if (head.startsWith('netdev:')) {
    const ifname = head.slice('netdev:'.length);
    const problem = checkInterfaceName(ifname);
    if (problem !== undefined) fail(problem);
    spec = { kind: 'netdev', text, ifname, addresses: [] };
  } else if (head === 'soft') {
    spec = { kind: 'soft', text, peer: '', addresses: [] };
  } else {
    const pci = normalizePciAddress(head);
    if (pci === undefined) {
      fail(
        /^[0-9a-f:.]+$/i.test(head)
          ? `'${head}' is not a PCI address; give DDDD:BB:DD.F or BB:DD.F, as lspci -D shows (0000:05:00.0)`
          : `'${head}' is neither a PCI address, soft, vhost-user:SOCKET nor netdev:IFNAME; ${USAGE}`,
      );
      return undefined;
    }
    spec = { kind: 'pci', text, pci, addresses: [] };
  }

  const valid: readonly string[] = VALID_KEYS[spec.kind];
  const seen = new Set<string>();
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    const key = eq < 0 ? pair : pair.slice(0, eq);
    const value = eq < 0 ? undefined : pair.slice(eq + 1);
    if (!valid.includes(key)) {
      fail(`unknown key '${key}'; valid keys for a ${spec.kind} port: ${valid.join(', ')}`);
      continue;
    }
    if (value === undefined || value === '') {
      fail(`${key} needs a value (${key}=...)`);
      continue;
    }
    if (seen.has(key) && key !== 'ip') {
      fail(`${key} is given twice`);
      continue;
    }
    seen.add(key);
    applyKey(spec, key, value, fail);
  }
  if (spec.kind === 'soft' && spec.peer === '') fail('a soft port needs peer=SOCKET: the vhost-user socket it links the VM to');
  return failed ? undefined : spec;
}

function applyKey(spec: PortSpec, key: string, value: string, fail: (msg: string) => void): void {
  const traffic = spec as TrafficOptions;
  switch (key) {
    case 'mac': {
      const mac = value.toLowerCase();
      if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(mac)) fail(`mac '${value}' is not a MAC address; give six hex bytes, 52:54:00:12:34:56`);
      else if (parseInt(mac.slice(0, 2), 16) & 1) fail(`mac '${value}' is a multicast address; the low bit of the first byte must be 0`);
      else if (mac === '00:00:00:00:00:00') fail(`mac '${value}' is all zeros`);
      else spec.mac = mac;
      return;
    }
    case 'ip': {
      if (value === 'dhcp') {
        spec.addresses.push('dhcp');
        return;
      }
      const m = /^([^/]+)\/(\d{1,3})$/.exec(value);
      const v4 = m !== null && isIPv4(m[1]!) && Number(m[2]) <= 32;
      const v6 = m !== null && isIPv6(m[1]!) && Number(m[2]) <= 128;
      if (!v4 && !v6) fail(`ip '${value}' is not an address with a prefix length; give 10.0.0.1/24, fd00::1/64 or dhcp`);
      else spec.addresses.push(value);
      return;
    }
    case 'vlan': {
      const n = /^\d{1,4}$/.test(value) ? Number(value) : NaN;
      if (!(n >= 1 && n <= 4094)) fail(`vlan '${value}' is not valid; give a VLAN ID from 1 to 4094`);
      else traffic.vlan = n;
      return;
    }
    case 'rx_police':
    case 'tx_police': {
      const n = /^\d+(\.\d+)?$/.test(value) ? Number(value) : NaN;
      if (!(n > 0 && n <= 400)) fail(`${key} '${value}' is not valid; give a rate in Gbit/s, such as 0.5 or 10`);
      else if (key === 'rx_police') traffic.rxPolice = n;
      else traffic.txPolice = n;
      return;
    }
    case 'ingress':
    case 'egress':
      // any text: it reaches Snabb as an escaped Lua string (renderSnabbConfig), and Snabb's pflua checks the syntax
      if (value.trim() === '') fail(`${key} needs a pcap filter expression`);
      else if (key === 'ingress') traffic.ingress = value;
      else traffic.egress = value;
      return;
    case 'peer':
      checkSocketPath(value, 'peer socket', fail);
      if (spec.kind === 'soft') spec.peer = path.normalize(value);
      return;
  }
}

/** Unix socket paths: absolute, and short enough for sun_path (107 bytes). */
function checkSocketPath(p: string, what: string, fail: (msg: string) => void): void {
  if (p === '') fail(`the ${what} path is missing`);
  else if (!path.isAbsolute(p)) fail(`the ${what} '${p}' is not an absolute path`);
  else if (Buffer.byteLength(p) > 107) fail(`the ${what} '${p}' is longer than the 107 bytes a Unix socket path can have`);
}

/** Why `name` cannot be a Linux interface name (at most 15 bytes, no '/', ':' or white space), or undefined. */
function checkInterfaceName(name: string): string | undefined {
  if (name === '') return "the interface name is missing; give the container's interface, such as netdev:eth1";
  if (Buffer.byteLength(name) > 15) return `'${name}' is longer than the 15 characters an interface name can have`;
  if (name === '.' || name === '..' || /[/:\s]/.test(name)) return `'${name}' is not an interface name; give one as ip link shows it, such as eth1`;
  return undefined;
}

/** The same PCI address, socket, interface or MAC used twice. */
function findDuplicates(specs: PortSpec[]): string[] {
  const problems: string[] = [];
  const seen = new Map<string, string>();
  const once = (key: string, what: string, text: string) => {
    const first = seen.get(key);
    if (first !== undefined) problems.push(`${what} is given twice ('${first}' and '${text}'); each port can be used once`);
    else seen.set(key, text);
  };
  for (const s of specs) {
    if (s.kind === 'pci') once(`pci:${s.pci}`, `PCI address ${s.pci}`, s.text);
    if (s.kind === 'vhost-user') once(`sock:${s.socket}`, `socket ${s.socket}`, s.text);
    if (s.kind === 'soft') once(`sock:${s.peer}`, `socket ${s.peer}`, s.text);
    if (s.kind === 'netdev') once(`netdev:${s.ifname}`, `interface ${s.ifname}`, s.text);
    if (s.mac !== undefined) once(`mac:${s.mac}`, `MAC ${s.mac}`, s.text);
  }
  return problems;
}
