import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { VmConfig } from '../config/config.js';
import { hostError } from '../errors.js';
import type { CleanupStack } from '../lifecycle/cleanup-stack.js';
import { log } from '../log.js';
import type { RuntimePaths } from '../paths.js';
import type { NicPlan } from '../qemu/qemu-plan.js';
import { checkNetworkHost } from './check-network-host.js';
import { probeContainerNetwork } from './container-network.js';
import type { GuestNic } from './guest-nic.js';
import { macAddress } from './mac-address.js';
import { applySteps } from './net-steps.js';
import { planBridge } from './plan-bridge.js';
import { planNat, type NatPlan } from './plan-nat.js';
import { planUserModeNic } from './plan-network.js';
import { dnsmasqUser, startDnsmasq } from './start-dnsmasq.js';

/** eth0 as the chosen --net mode makes it: QEMU's NIC, and how the guest configures it. */
export interface NetworkSetup {
  nic?: NicPlan;
  guestNic?: GuestNic;
}

/**
 * Sets up eth0's side in the container (bridge, tap, dnsmasq, NAT rules) and registers its teardown.
 * Ports the launcher itself serves (VNC, web) are passed so nat mode does not forward them to the VM.
 */
export async function applyNetwork(
  config: VmConfig,
  paths: RuntimePaths,
  cleanup: CleanupStack,
  ownPorts: number[],
): Promise<NetworkSetup> {
  checkNetworkHost(config.net);
  switch (config.net) {
    case 'none':
      return {};
    case 'user':
      // --ip/--gateway also work here (QEMU's user network is 10.0.2.0/24, gateway 10.0.2.2, DNS 10.0.2.3)
      return {
        nic: planUserModeNic(config),
        guestNic: {
          name: 'eth0',
          mac: macAddress(config.name, 0),
          dhcp: config.ip === undefined,
          addresses: config.ip !== undefined ? [config.ip] : [],
          ...(config.gateway !== undefined ? { gateway: config.gateway } : {}),
          ...(config.ip !== undefined ? { nameservers: ['10.0.2.3'] } : {}),
        },
      };
    case 'nat':
      return applyNat(config, paths, cleanup, ownPorts);
    case 'bridge':
      return applyBridge(config, cleanup);
  }
}

async function applyNat(config: VmConfig, paths: RuntimePaths, cleanup: CleanupStack, ownPorts: number[]): Promise<NetworkSetup> {
  if (config.ip !== undefined) log.warn('--ip is for --net bridge; in nat mode the VM gets its address by DHCP');
  if (config.forwards.length > 0) log.warn('--forward is for --net user; nat mode forwards every port to the VM already (keep ports with --forward-exclude)');
  const plan = planNat({ name: config.name, net: await probeContainerNetwork(), ownPorts, dnsmasqDir: paths.dnsmasqDir, dnsmasqUser: dnsmasqUser() });
  await applySteps(plan.steps, cleanup);
  enableForwarding(IP_FORWARD, 'net.ipv4.ip_forward', cleanup);
  const ipv6 = await applyNatIpv6(plan, cleanup);
  await startDnsmasq([...plan.dnsmasqArgv, ...(ipv6 ? plan.ipv6.dnsmasqArgs : [])], paths.dnsmasqDir, cleanup);
  log.info(
    `eth0: nat on ${plan.subnet}, the VM is ${plan.vmIp}` +
      (plan.uplink !== undefined ? `; every port of ${plan.uplink}'s address goes to it${describeKeptPorts(plan.keptPorts)}` : '; the container has no uplink, so nothing is forwarded'),
  );
  if (ipv6) {
    const { prefix, vmIp, egress } = plan.ipv6;
    log.info(
      `eth0: IPv6 on ${prefix} by router advertisement, the VM is ${vmIp}; ` +
        (egress
          ? `out through ${plan.uplink} by NAT66, and the same ports of ${plan.uplink}'s IPv6 address go to it`
          : `the container has no IPv6 route out (Docker's default network has none), so the VM's IPv6 reaches only the container`),
    );
  }
  return { nic: plan.nic, guestNic: plan.guestNic };
}

/**
 * The IPv6 half of nat mode, after the bridge exists. false (and a warning) when the container cannot have IPv6 on
 * the bridge: a kernel without IPv6, or IPv6 disabled and /proc/sys read-only. IPv4 goes on either way.
 */
async function applyNatIpv6(plan: NatPlan, cleanup: CleanupStack): Promise<boolean> {
  if (!existsSync('/proc/sys/net/ipv6')) {
    log.warn('eth0: the kernel has no IPv6, so the VM gets IPv4 only');
    return false;
  }
  // Docker disables IPv6 in containers on networks without it, and a new interface inherits that; the bridge is
  // ours and goes at teardown, so its setting needs no undo
  const disabled = `/proc/sys/net/ipv6/conf/${plan.bridge}/disable_ipv6`;
  try {
    if (readFileSync(disabled, 'utf8').trim() !== '0') writeFileSync(disabled, '0');
  } catch (err) {
    log.warn(`eth0: cannot enable IPv6 on ${plan.bridge} (${(err as NodeJS.ErrnoException).code}), so the VM gets IPv4 only; run the container with --privileged`);
    return false;
  }
  await applySteps(plan.ipv6.steps, cleanup);
  if (plan.ipv6.egress) {
    try {
      enableForwarding(IPV6_FORWARDING, 'net.ipv6.conf.all.forwarding', cleanup);
      keepAcceptingRouterAdvertisements(plan, cleanup);
    } catch {
      // IPv4 still works: say what is missing and go on
      log.warn(`eth0: cannot set net.ipv6.conf.all.forwarding=1, so the VM's IPv6 reaches only the container; run the container with --privileged or --sysctl net.ipv6.conf.all.forwarding=1`);
    }
  }
  return true;
}

/**
 * With forwarding on, the kernel ignores router advertisements on an interface whose accept_ra is 1: a container
 * whose IPv6 default route came from one (proto ra) would lose it when it expires. accept_ra=2 keeps taking them.
 */
function keepAcceptingRouterAdvertisements(plan: NatPlan, cleanup: CleanupStack): void {
  const file = `/proc/sys/net/ipv6/conf/${plan.uplink}/accept_ra`;
  try {
    const old = readFileSync(file, 'utf8').trim();
    if (old !== '1') return;
    writeFileSync(file, '2');
    cleanup.deferRecorded(`restore ${plan.uplink} accept_ra=${old}`, { file, content: old });
  } catch (err) {
    log.warn(`eth0: cannot set ${file} to 2 (${(err as NodeJS.ErrnoException).code}); an IPv6 route the container learned by router advertisement will not be renewed`);
  }
}

/** " except TCP 22, 5901 and UDP 5901", or "" */
export function describeKeptPorts(kept: { tcp: number[]; udp: number[] }): string {
  const parts = [...(kept.tcp.length > 0 ? [`TCP ${kept.tcp.join(', ')}`] : []), ...(kept.udp.length > 0 ? [`UDP ${kept.udp.join(', ')}`] : [])];
  return parts.length > 0 ? ` except ${parts.join(' and ')}` : '';
}

async function applyBridge(config: VmConfig, cleanup: CleanupStack): Promise<NetworkSetup> {
  if (config.forwards.length > 0) log.warn('--forward is for --net user; in bridge mode the VM has its own address on the network');
  const plan = planBridge({ name: config.name, net: await probeContainerNetwork(), ...(config.ip !== undefined ? { ip: config.ip } : {}), ...(config.gateway !== undefined ? { gateway: config.gateway } : {}) });
  for (const w of plan.warnings) log.warn(w);
  await applySteps(plan.steps, cleanup);
  log.info(
    `eth0: bridged onto the container's ${plan.uplink} (bridge ${plan.bridge}); the VM ` +
      (config.ip !== undefined ? `is ${config.ip}` : 'asks for an address by DHCP (Docker runs no DHCP server: give --ip if nothing answers)'),
  );
  return { nic: plan.nic, guestNic: plan.guestNic };
}

const IP_FORWARD = '/proc/sys/net/ipv4/ip_forward';
const IPV6_FORWARDING = '/proc/sys/net/ipv6/conf/all/forwarding';

/** Routing between the VM's subnet and eth0 needs forwarding on; the old value comes back at teardown. */
function enableForwarding(file: string, sysctl: string, cleanup: CleanupStack): void {
  const old = readFileSync(file, 'utf8').trim();
  if (old === '1') return;
  try {
    writeFileSync(file, '1');
  } catch (err) {
    throw hostError(`nat mode needs ${sysctl}=1 and cannot set it (${(err as NodeJS.ErrnoException).code}); run the container with --privileged or --sysctl ${sysctl}=1, or use --net user`, err);
  }
  cleanup.deferRecorded(`restore ${sysctl}=${old}`, { file, content: old });
}
