import { readFileSync, writeFileSync } from 'node:fs';
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
import { planNat } from './plan-nat.js';
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
  enableIpForwarding(cleanup);
  await startDnsmasq(plan.dnsmasqArgv, paths.dnsmasqDir, cleanup);
  log.info(
    `eth0: nat on ${plan.subnet}, the VM is ${plan.vmIp}` +
      (plan.uplink !== undefined ? `; every port of ${plan.uplink}'s address goes to it${describeKeptPorts(plan.keptPorts)}` : '; the container has no uplink, so nothing is forwarded'),
  );
  return { nic: plan.nic, guestNic: plan.guestNic };
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

/** Routing between the VM's subnet and eth0 needs net.ipv4.ip_forward; the old value comes back at teardown. */
function enableIpForwarding(cleanup: CleanupStack): void {
  const old = readFileSync(IP_FORWARD, 'utf8').trim();
  if (old === '1') return;
  try {
    writeFileSync(IP_FORWARD, '1');
  } catch (err) {
    throw hostError(`nat mode needs net.ipv4.ip_forward=1 and cannot set it (${(err as NodeJS.ErrnoException).code}); run the container with --privileged or --sysctl net.ipv4.ip_forward=1, or use --net user`, err);
  }
  cleanup.deferRecorded(`restore net.ipv4.ip_forward=${old}`, { file: IP_FORWARD, content: old });
}
