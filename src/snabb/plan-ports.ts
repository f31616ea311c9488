import type { GuestNic } from '../network/guest-nic.js';
import { netdevTapName } from '../network/interface-names.js';
import { planNetdevPort, type NetdevLink, type NetdevPortPlan } from '../network/plan-netdev.js';
import { macAddress } from '../network/mac-address.js';
import type { RuntimePaths } from '../paths.js';
import type { NicPlan } from '../qemu/qemu-plan.js';
import type { PortSpec } from './port-spec.js';
import { buildSnabbArgv, buildSocketPattern, renderSnabbConfig, type SnabbPort } from './render-snabb-config.js';

/** One `snabb snabbnfv traffic` the launcher runs and supervises: for one PCI port, or one soft link. */
export interface SnabbInstance {
  /** the VM NIC it serves: 1 for eth1 */
  nicIndex: number;
  nicName: string;
  kind: 'pci' | 'soft';
  /** the PCI address, or 'soft' */
  device: string;
  configPath: string;
  configText: string;
  argv: string[];
  logPath: string;
  /** the socket QEMU serves for this NIC */
  vmSocket: string;
  /** symlinks to make before Snabb starts: a soft port reaches its peer's socket through one */
  symlinks: { path: string; target: string }[];
}

export interface PortsPlan {
  snabb: SnabbInstance[];
  /** QEMU's NICs, eth1..N in order */
  nics: NicPlan[];
  guestNics: GuestNic[];
  /** sockets of `vhost-user:` ports, served by QEMU for a backend elsewhere */
  externalSockets: { nicIndex: number; socket: string }[];
  /** `netdev:` ports: a tap joined to a container interface by tc, no Snabb */
  netdevs: NetdevPortPlan[];
}

export interface PlanPortsInput {
  vmName: string;
  paths: Pick<RuntimePaths, 'snabbDir' | 'snabbConfig' | 'snabbLog' | 'vhostSocket'>;
  snabbBinary: string;
  /** the core to pin the Snabb of NIC n to, if any */
  cpuFor?: (nicIndex: number) => number | undefined;
  /** the interfaces of `netdev:` ports, as found once they appeared */
  netdevLinks?: ReadonlyMap<string, NetdevLink>;
}

/** From parsed port specs to every Snabb config, argv and QEMU NIC. Pure. */
export function planPorts(specs: readonly PortSpec[], input: PlanPortsInput): PortsPlan {
  const plan: PortsPlan = { snabb: [], nics: [], guestNics: [], externalSockets: [], netdevs: [] };
  const socketPattern = buildSocketPattern(input.paths.snabbDir);
  specs.forEach((spec, i) => {
    const nicIndex = i + 1;
    const nicName = `eth${nicIndex}`;
    if (spec.kind === 'netdev') {
      const link = input.netdevLinks?.get(spec.ifname);
      if (link === undefined) throw new Error(`planPorts: no facts for interface ${spec.ifname}`);
      const netdev = planNetdevPort({ nicName, link, tap: netdevTapName(input.vmName, nicIndex), addresses: spec.addresses, ...(spec.mac !== undefined ? { mac: spec.mac } : {}) });
      plan.netdevs.push(netdev);
      plan.nics.push(netdev.nic);
      plan.guestNics.push(netdev.guestNic);
      return;
    }
    const mac = spec.mac ?? macAddress(input.vmName, nicIndex);
    const dhcp = spec.addresses.includes('dhcp');
    plan.guestNics.push({ name: nicName, mac, dhcp, addresses: spec.addresses.filter((a) => a !== 'dhcp') });

    if (spec.kind === 'vhost-user') {
      plan.nics.push({ kind: 'vhost-user', mac, socket: spec.socket });
      plan.externalSockets.push({ nicIndex, socket: spec.socket });
      return;
    }
    const vmSocket = input.paths.vhostSocket(nicName);
    plan.nics.push({ kind: 'vhost-user', mac, socket: vmSocket });
    const vmPort: SnabbPort = { portId: nicName, mac };
    if (spec.vlan !== undefined) vmPort.vlan = spec.vlan;
    if (spec.ingress !== undefined) vmPort.ingress = spec.ingress;
    if (spec.egress !== undefined) vmPort.egress = spec.egress;
    if (spec.rxPolice !== undefined) vmPort.rxPolice = spec.rxPolice;
    if (spec.txPolice !== undefined) vmPort.txPolice = spec.txPolice;
    const ports = [vmPort];
    const symlinks: SnabbInstance['symlinks'] = [];
    if (spec.kind === 'soft') {
      // the peer is a trunk: it sees the VM's frames tagged when the VM's port has a VLAN
      const peerId = `${nicName}_peer`;
      ports.push({ portId: peerId });
      symlinks.push({ path: input.paths.vhostSocket(peerId), target: spec.peer });
    }
    const configPath = input.paths.snabbConfig(nicIndex);
    const device = spec.kind === 'pci' ? spec.pci : 'soft';
    const cpu = input.cpuFor?.(nicIndex);
    plan.snabb.push({
      nicIndex,
      nicName,
      kind: spec.kind,
      device,
      configPath,
      configText: renderSnabbConfig(ports),
      argv: buildSnabbArgv({ binary: input.snabbBinary, device, configPath, socketPattern, ...(cpu !== undefined ? { cpu } : {}) }),
      logPath: input.paths.snabbLog(nicIndex),
      vmSocket,
      symlinks,
    });
  });
  return plan;
}
