import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { hostError, inputError, type UserError } from '../errors.js';

/** What sysfs says about one PCI function. */
export interface PciFacts {
  address: string;
  exists: boolean;
  /** '0x8086' */
  vendor?: string;
  /** '0x10fb' */
  device?: string;
  /** the kernel driver bound now (ixgbe), to give the device back to at exit */
  kernelDriver?: string;
  /** the device's kernel network interfaces that this network namespace can see */
  netdevs: string[];
  /** the device's NUMA node; undefined when the host has no NUMA information (-1) */
  numaNode?: number;
}

/** NICs that `snabbnfv traffic` drives with one VMDq pool per VM port (Snabb's lib/hardware/pci.lua). */
const SUPPORTED: Record<string, { model: string; warning?: string }> = {
  '8086:10fb': { model: 'Intel 82599 SFP+' },
  '8086:151c': { model: 'Intel 82599 10GBASE-T' },
  '8086:154d': { model: 'Intel X520' },
  '8086:1528': { model: 'Intel X540' },
  '8086:1521': {
    model: 'Intel i350',
    warning: 'is an Intel i350 (8086:1521), a 1 GbE NIC: Snabb drives it, but snabbvm is built and tested for the 82599',
  },
};
/** Known but not usable, so the message can name them. */
const UNSUPPORTED_MODELS: Record<string, string> = {
  '8086:1533': 'Intel i210 (Snabb serves only one promiscuous port on it, without MAC or VLAN)',
  '8086:157b': 'Intel i210 (Snabb serves only one promiscuous port on it, without MAC or VLAN)',
  '8086:1572': 'Intel X710 (no Snabb driver for snabbnfv)',
  '8086:1583': 'Intel XL710 (no Snabb driver for snabbnfv)',
  '8086:10d3': 'Intel 82574L (no VMDq)',
  '8086:105e': 'Intel 82571 (no VMDq)',
};
const SUPPORTED_LIST = 'Intel 82599 (8086:10fb, 8086:151c), X520 (8086:154d), X540 (8086:1528), or i350 (8086:1521)';

export const pciDevicePath = (sysfsRoot: string, address: string) => path.join(sysfsRoot, 'bus/pci/devices', address);

/** Reads one device's facts from sysfs (under --sysfs-root for tests). */
export function probePciDevice(sysfsRoot: string, address: string): PciFacts {
  const dir = pciDevicePath(sysfsRoot, address);
  if (!existsSync(dir)) return { address, exists: false, netdevs: [] };
  const read = (name: string) => {
    try {
      return readFileSync(path.join(dir, name), 'utf8').trim();
    } catch {
      return undefined;
    }
  };
  const facts: PciFacts = { address, exists: true, netdevs: [] };
  const vendor = read('vendor');
  const device = read('device');
  if (vendor !== undefined) facts.vendor = vendor.toLowerCase();
  if (device !== undefined) facts.device = device.toLowerCase();
  try {
    facts.kernelDriver = path.basename(readlinkSync(path.join(dir, 'driver')));
  } catch {}
  // a virtio NIC's interface sits one level down, under its virtio device (virtio0/net/eth0)
  const netDirs = ['net', ...safeReaddir(dir).filter((d) => /^virtio\d+$/.test(d)).map((d) => path.join(d, 'net'))];
  facts.netdevs = netDirs.flatMap((d) => safeReaddir(path.join(dir, d))).sort();
  const node = Number(read('numa_node'));
  if (Number.isInteger(node) && node >= 0) facts.numaNode = node;
  return facts;
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** What the kernel has on an interface: addresses and routes, as words for a message. */
export type KernelUse = Map<string, string[]>;

/**
 * The checks of one device before anything starts. Problems carry their exit code: 3 for a wrong address or
 * device, 4 for a device the host is using.
 */
export function validatePciDevice(
  facts: PciFacts,
  kernelUse: KernelUse,
  force: boolean,
  sysfsRoot: string,
  testModels: readonly string[] = [],
): { problems: UserError[]; warnings: string[] } {
  const problems: UserError[] = [];
  const warnings: string[] = [];
  const a = facts.address;
  if (!facts.exists) {
    problems.push(inputError(`PCI device ${a} does not exist (no ${pciDevicePath(sysfsRoot, a)}); list the host's NICs with: lspci -D -nn | grep -i ethernet`));
    return { problems, warnings };
  }
  const id = `${(facts.vendor ?? '?').replace(/^0x/, '')}:${(facts.device ?? '?').replace(/^0x/, '')}`;
  const supported = SUPPORTED[id];
  if (!supported) {
    const known = UNSUPPORTED_MODELS[id];
    const what = known ? `an ${known}` : `${id}${facts.kernelDriver ? ` (kernel driver ${facts.kernelDriver})` : ''}`;
    if (!testModels.includes(id)) {
      problems.push(inputError(`PCI device ${a} is ${what}, which snabbnfv cannot serve VM ports on; use an ${SUPPORTED_LIST}`));
      return { problems, warnings };
    }
    warnings.push(`PCI device ${a} is ${what}, which snabbnfv cannot serve VM ports on: used only because --test-pci-model ${id} says so (tests on emulated NICs)`);
  } else if (supported.warning) warnings.push(`PCI device ${a} ${supported.warning}`);

  const uses = facts.netdevs.flatMap((dev) => (kernelUse.get(dev) ?? []).map((u) => `${dev} has ${u}`));
  if (uses.length > 0) {
    const msg = `PCI device ${a} looks like a NIC the host is using (${uses.join('; ')}); Snabb would take it from the kernel`;
    if (force) warnings.push(`${msg}: using it anyway (--force)`);
    else problems.push(hostError(`${msg}. Pick another port, remove its addresses and routes, or give --force`));
  } else if (facts.kernelDriver !== undefined && facts.kernelDriver !== 'vfio-pci' && facts.netdevs.length === 0) {
    // In a container the device's interface lives in the host's network namespace, invisible from here.
    warnings.push(
      `PCI device ${a} is bound to the kernel driver ${facts.kernelDriver}, but its interface is not in this network namespace, so its addresses and routes cannot be checked; make sure it is not the host's management NIC`,
    );
  }
  return { problems, warnings };
}

interface IpAddrJson {
  ifname?: string;
  addr_info?: { family?: string; local?: string; prefixlen?: number; scope?: string }[];
}
interface IpRouteJson {
  dst?: string;
  gateway?: string;
  dev?: string;
}

/**
 * Addresses and routes per interface, from `ip -j addr` and `ip -j route` (IPv4 and IPv6). Link-local
 * addresses and routes don't count: the kernel gives those to every interface that is up.
 */
export function parseKernelUse(addrJson: string, routeJsons: string[]): KernelUse {
  const use: KernelUse = new Map();
  const add = (dev: string | undefined, what: string) => {
    if (dev === undefined) return;
    use.set(dev, [...(use.get(dev) ?? []), what]);
  };
  for (const link of JSON.parse(addrJson || '[]') as IpAddrJson[]) {
    for (const a of link.addr_info ?? []) {
      if (a.scope === 'global' || a.scope === 'site') add(link.ifname, `address ${a.local}/${a.prefixlen}`);
    }
  }
  for (const text of routeJsons) {
    for (const r of JSON.parse(text || '[]') as IpRouteJson[]) {
      const dst = r.dst ?? '';
      if (/^(fe80:|ff00:|multicast)/i.test(dst)) continue;
      add(r.dev, `route ${dst}${r.gateway ? ` via ${r.gateway}` : ''}`);
    }
  }
  return use;
}

/** Host NUMA nodes (node0, node1, ...) under sysfs. */
export function probeNumaNodes(sysfsRoot: string): number[] {
  try {
    return readdirSync(path.join(sysfsRoot, 'devices/system/node'))
      .map((d) => /^node(\d+)$/.exec(d)?.[1])
      .filter((n): n is string => n !== undefined)
      .map(Number)
      .sort((x, y) => x - y);
  } catch {
    return [];
  }
}

/** The CPUs of one NUMA node, from its cpulist. */
export function probeNodeCpus(sysfsRoot: string, node: number): number[] {
  try {
    return parseCpuList(readFileSync(path.join(sysfsRoot, `devices/system/node/node${node}/cpulist`), 'utf8'));
  } catch {
    return [];
  }
}

/** '0-3,8-11' → [0,1,2,3,8,9,10,11] */
export function parseCpuList(text: string): number[] {
  const cpus: number[] = [];
  for (const part of text.trim().split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) continue;
    const first = Number(m[1]);
    const last = m[2] === undefined ? first : Number(m[2]);
    for (let c = first; c <= last; c++) cpus.push(c);
  }
  return cpus;
}

/**
 * A core for the nth Snabb on a node: from the node's last CPU down, so the node's first core stays with the
 * kernel's housekeeping. Undefined when the node's CPUs are unknown.
 */
export function chooseSnabbCpu(nodeCpus: readonly number[], nth: number): number | undefined {
  if (nodeCpus.length === 0) return undefined;
  return nodeCpus[nodeCpus.length - 1 - (nth % nodeCpus.length)];
}
