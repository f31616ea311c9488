import { existsSync, mkdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';
import type { VmConfig } from '../config/config.js';
import { hostError, inputError, ProblemsError, type UserError } from '../errors.js';
import type { CleanupStack } from '../lifecycle/cleanup-stack.js';
import { log } from '../log.js';
import type { GuestNic } from '../network/guest-nic.js';
import type { NetdevLink } from '../network/plan-netdev.js';
import { applyNetdevPort, checkInterfaceFree, checkNetdevHost, readTapCounters, waitForInterfaces } from '../network/start-netdev.js';
import type { RuntimePaths } from '../paths.js';
import { ProgramError, runProgram } from '../process/run-program.js';
import type { GuestMemory, NicPlan } from '../qemu/qemu-plan.js';
import { checkPcapFilters, type FilterToCheck } from './check-filters.js';
import { checkNotDrivenBySnabb, claimPciDevice, deferRebind, PCI_LOCK_DIR } from './claim-pci-device.js';
import { ensureHugetlbfs, explainHugepageShortage, planHugepages, probeHugepages } from './hugepages.js';
import { chooseSnabbCpu, parseKernelUse, probeNodeCpus, probeNumaNodes, probePciDevice, validatePciDevice, type KernelUse, type PciFacts } from './pci-device.js';
import { planPorts, type SnabbInstance } from './plan-ports.js';
import { parsePortSpecs, type PortSpec } from './port-spec.js';
import { readSnabbCounters, writePortsState, type PortStatus } from './port-status.js';
import { describeSnabbBuild } from './snabb-build.js';
import { needsVhostUserWithoutMsix, probeQemuVersion } from './qemu-version.js';
import { superviseSnabb, type SupervisedSnabb } from './supervise-snabb.js';

/** The VM's eth1..N: QEMU's NICs, the guest's addressing, and the guest memory vhost-user needs. */
export interface PortsSetup {
  nics: NicPlan[];
  guestNics: GuestNic[];
  memory: GuestMemory;
  /** `vectors=0` on the vhost-user NICs (QEMU < 8 under TCG) */
  vhostUserWithoutMsix: boolean;
}

/** How often state.json's `ports` (state, pid, counters) is refreshed. */
const STATUS_INTERVAL_MS = 5000;

/**
 * Checks the ports, starts one supervised Snabb per Snabb-driven NIC, joins `netdev:` ports to their interfaces,
 * and registers their teardown. Every check runs before anything is started: bad input is exit 3, a host that
 * isn't ready exit 4. `signal` ends the wait for `netdev:` interfaces.
 */
export async function startPorts(config: VmConfig, paths: RuntimePaths, cleanup: CleanupStack, accel: 'kvm' | 'tcg' = 'tcg', signal?: AbortSignal): Promise<PortsSetup> {
  if (config.ports.length === 0) return { nics: [], guestNics: [], memory: { kind: 'anonymous' }, vhostUserWithoutMsix: false };
  const specs = parsePortSpecs(config.ports);
  const runsSnabb = specs.some((s) => s.kind === 'pci' || s.kind === 'soft');
  const vhostUserSpecs = specs.filter((s) => s.kind !== 'netdev');
  const netdevNames = specs.flatMap((s) => (s.kind === 'netdev' ? [s.ifname] : []));

  // Checks: everything is collected before anything is reported.
  const problems: UserError[] = [];
  const warnings: string[] = [];
  const facts = new Map<string, PciFacts>();
  for (const s of specs) if (s.kind === 'pci') facts.set(s.pci, probePciDevice(config.sysfsRoot, s.pci));
  const kernelUse = [...facts.values()].some((f) => f.netdevs.length > 0) ? await probeKernelUse() : new Map();
  for (const f of facts.values()) {
    const r = validatePciDevice(f, kernelUse, config.force, config.sysfsRoot, config.testPciModels);
    problems.push(...r.problems);
    warnings.push(...r.warnings);
  }
  for (const s of specs) if (s.kind === 'vhost-user') problems.push(...(await checkExternalSocket(s.socket)));
  if (runsSnabb) problems.push(...(await checkFilters(config.snabbBinary, specs)));
  if (netdevNames.length > 0) problems.push(...checkNetdevHost());
  if (problems.length > 0) throw new ProblemsError(problems);
  for (const w of warnings) log.warn(w);

  let netdevLinks = new Map<string, NetdevLink>();
  if (netdevNames.length > 0) {
    netdevLinks = await waitForInterfaces(netdevNames, config.netdevTimeoutSec, signal);
    const busy = (await Promise.all([...netdevLinks.values()].map(checkInterfaceFree))).flat();
    if (busy.length > 0) throw new ProblemsError(busy);
  }

  // NUMA: Snabb on a core of its NIC's node, the guest's memory on the first NIC's node.
  const nodes = probeNumaNodes(config.sysfsRoot);
  const numa = nodes.length > 1;
  const pciNodes = specs.map((s) => (s.kind === 'pci' ? facts.get(s.pci)?.numaNode : undefined));
  const hostNode = numa ? pciNodes.find((n) => n !== undefined) : undefined;
  if (hostNode !== undefined && pciNodes.some((n) => n !== undefined && n !== hostNode)) {
    log.warn(`the ports are on different NUMA nodes; the guest memory is bound to node ${hostNode}, so ports elsewhere cross the interconnect`);
  }
  const nthOnNode = new Map<number, number>();
  const cpuFor = (nicIndex: number): number | undefined => {
    const node = pciNodes[nicIndex - 1];
    if (!numa || node === undefined) return undefined;
    const nth = nthOnNode.get(node) ?? 0;
    nthOnNode.set(node, nth + 1);
    return chooseSnabbCpu(probeNodeCpus(config.sysfsRoot, node), nth);
  };

  const memory: GuestMemory = vhostUserSpecs.length > 0 ? await planGuestMemory(config, vhostUserSpecs, hostNode, cleanup) : { kind: 'anonymous' };

  for (const [address, f] of facts) {
    claimPciDevice(address, config.name, PCI_LOCK_DIR, cleanup);
    await checkNotDrivenBySnabb(config.sysfsRoot, address);
    deferRebind(config.sysfsRoot, address, f.kernelDriver, cleanup);
  }

  const plan = planPorts(specs, { vmName: config.name, paths, snabbBinary: config.snabbBinary, cpuFor, netdevLinks });
  for (const netdev of plan.netdevs) {
    await applyNetdevPort(netdev, cleanup);
    log.info(`${netdev.guestNic.name}: netdev:${netdev.ifname} through tap ${netdev.tap} (tc redirects both ways; MAC ${netdev.mac}, MTU ${netdev.mtu})`);
  }
  for (const { nicIndex, socket } of plan.externalSockets) {
    // QEMU removes its socket when it exits normally; this covers a QEMU that was killed
    cleanup.defer(`remove ${socket}`, () => rmSync(socket, { force: true }));
    // QEMU's vhost-user netdev waits for its backend before the machine starts
    log.info(`eth${nicIndex}: QEMU serves ${socket}; the VM starts once a vhost-user backend connects to it`);
  }

  const statuses: PortStatus[] = specs.map((s, i) => ({
    name: `eth${i + 1}`,
    kind: s.kind,
    device: s.kind === 'pci' ? s.pci : s.kind === 'soft' ? 'soft' : s.kind === 'netdev' ? `netdev:${s.ifname}` : `vhost-user:${s.socket}`,
    mac: plan.guestNics[i]!.mac,
    ...(plan.nics[i]!.kind === 'vhost-user' ? { socket: plan.nics[i].socket } : {}),
    ...(plan.nics[i]!.kind === 'tap' ? { tap: plan.nics[i].ifname } : {}),
    state: s.kind === 'vhost-user' || s.kind === 'netdev' ? 'external' : 'starting',
    restarts: 0,
    updatedAt: new Date().toISOString(),
  }));
  const supervised = new Map<number, SupervisedSnabb>();
  const snabbBuild = runsSnabb ? describeSnabbBuild(config.snabbBinary) : undefined;
  if (snabbBuild) log.info(`Snabb ${snabbBuild.binary}: ${snabbBuild.version}${snabbBuild.patched === false ? ' (without our patch: QEMU >= 7.1 needs it; see docs/snabb.md)' : ''}`);
  const publish = () => {
    for (const status of statuses) {
      const i = Number(status.name.slice(3));
      const sup = supervised.get(i);
      if (sup) {
        status.state = sup.state;
        status.restarts = sup.restarts;
        if (sup.pid !== undefined) status.pid = sup.pid;
        else delete status.pid;
        if (sup.lastExit !== undefined) status.lastExit = sup.lastExit;
        const counters = sup.pid !== undefined ? readSnabbCounters(sup.pid, status.name) : undefined;
        if (counters) status.counters = counters;
      }
      const counters = status.tap !== undefined ? readTapCounters(status.tap) : undefined;
      if (counters) status.counters = counters;
      status.updatedAt = new Date().toISOString();
    }
    writePortsState(paths, statuses, snabbBuild);
  };

  if (plan.snabb.length > 0) mkdirSync(paths.snabbDir, { recursive: true });
  for (const inst of plan.snabb) {
    const status = statuses[inst.nicIndex - 1]!;
    status.log = inst.logPath;
    prepareSnabbFiles(inst, cleanup);
    const label = `Snabb for ${inst.nicName} (${inst.device})`;
    const sup = await superviseSnabb({ label, argv: inst.argv, logFile: inst.logPath, onChange: () => publish() });
    supervised.set(inst.nicIndex, sup);
    cleanup.defer(`stop ${label}`, () => sup.stop());
    log.info(`${inst.nicName}: Snabb (pid ${sup.pid}) serves ${inst.device === 'soft' ? 'a software switch' : `PCI device ${inst.device}`}; log ${inst.logPath}`);
  }
  publish();
  const timer = setInterval(publish, STATUS_INTERVAL_MS);
  timer.unref();
  cleanup.defer('stop publishing port status', () => clearInterval(timer));

  const vhostUserWithoutMsix = needsVhostUserWithoutMsix(await probeQemuVersion(config.qemuBinary), accel);
  return { nics: plan.nics, guestNics: plan.guestNics, memory, vhostUserWithoutMsix };
}

/**
 * Snabb-driven ports need hugetlbfs guest memory shared with Snabb, and huge pages for Snabb itself: exit 4 when
 * too few are free. With only `vhost-user:` ports, memfd stands in when the huge pages don't suffice.
 */
async function planGuestMemory(config: VmConfig, specs: PortSpec[], hostNode: number | undefined, cleanup: CleanupStack): Promise<GuestMemory> {
  const snabbProcesses = specs.filter((s) => s.kind !== 'vhost-user').length;
  const pool = probeHugepages(config.sysfsRoot, hostNode);
  const shortage = explainHugepageShortage(planHugepages(config.memoryMiB, snabbProcesses), pool, config.memoryMiB);
  if (shortage !== undefined) {
    if (snabbProcesses > 0) throw hostError(shortage);
    log.info(`guest memory is shared memfd, not huge pages (${shortage.split(':')[0]})`);
    return { kind: 'memfd' };
  }
  await ensureHugetlbfs(config.hugepagesDir, cleanup);
  return hostNode === undefined ? { kind: 'hugetlbfs', dir: config.hugepagesDir } : { kind: 'hugetlbfs', dir: config.hugepagesDir, hostNode };
}

/** The config file, the peer symlinks, and the teardown of what Snabb leaves in /tmp. */
function prepareSnabbFiles(inst: SnabbInstance, cleanup: CleanupStack): void {
  writeFileSync(inst.configPath, inst.configText);
  for (const link of inst.symlinks) symlinkSync(link.target, link.path);
  // Snabb caches each socket's negotiated features in /tmp/vhost_features_<path with / as __>
  const caches = [inst.vmSocket, ...inst.symlinks.map((l) => l.path)].map((s) => `/tmp/vhost_features_${s.replace(/\//g, '__')}`);
  cleanup.defer(`remove Snabb's feature caches for ${inst.nicName}`, () => {
    for (const c of caches) rmSync(c, { force: true });
  });
}

/** Addresses and routes of the interfaces this network namespace can see. */
async function probeKernelUse(): Promise<KernelUse> {
  try {
    const addr = await runProgram(['ip', '-j', 'addr', 'show']);
    const v4 = await runProgram(['ip', '-j', '-4', 'route', 'show', 'table', 'main']);
    const v6 = await runProgram(['ip', '-j', '-6', 'route', 'show', 'table', 'main']);
    return parseKernelUse(addr.stdout, [v4.stdout, v6.stdout]);
  } catch (err) {
    log.warn(`cannot list the host's addresses and routes (${(err as Error).message}); the management NIC check is skipped`);
    return new Map();
  }
}

/** A `vhost-user:` socket: its folder exists, and no other program serves it. */
async function checkExternalSocket(socket: string): Promise<UserError[]> {
  const dir = path.dirname(socket);
  if (!existsSync(dir)) return [inputError(`vhost-user socket ${socket}: the folder ${dir} does not exist`)];
  if (!existsSync(socket)) return [];
  if (!statSync(socket).isSocket()) return [inputError(`vhost-user socket ${socket} exists and is not a socket; give a free path`)];
  const served = await new Promise<boolean>((resolve) => {
    const s = connect(socket);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
  return served ? [hostError(`vhost-user socket ${socket} is already served by another program (another VM?); give each VM its own socket`)] : [];
}

/** Every pcap filter, compiled by Snabb's pflua. No Snabb installed is exit 4. */
async function checkFilters(snabbBinary: string, specs: PortSpec[]): Promise<UserError[]> {
  const filters: FilterToCheck[] = [];
  specs.forEach((s, i) => {
    if (s.kind !== 'pci' && s.kind !== 'soft') return;
    if (s.ingress !== undefined) filters.push({ where: `port ${i + 1} ingress`, expression: s.ingress });
    if (s.egress !== undefined) filters.push({ where: `port ${i + 1} egress`, expression: s.egress });
  });
  try {
    await runProgram([snabbBinary, '--version'], { timeoutMs: 10_000 });
    return await checkPcapFilters(snabbBinary, filters);
  } catch (err) {
    if (err instanceof ProgramError && err.notFound) {
      return [hostError(`Snabb (${snabbBinary}) is not installed; the snabbvm image has it, or build Snabb v2024.06 with our patch (docs/snabb.md)`)];
    }
    throw err;
  }
}
