import type { VmConfig } from '../config/config.js';
import { attachConsoles, planVnc, startConsoles } from '../console/start-consoles.js';
import { writeSeed } from '../cloudinit/write-seed.js';
import { applyNetwork } from '../network/apply-network.js';
import { checkNetworkHost } from '../network/check-network-host.js';
import { startPorts } from '../snabb/start-ports.js';
import { ExitCode } from '../errors.js';
import { prepareExtraDisks } from '../image/extra-disks.js';
import { prepareVmDisk } from '../image/persist-disk.js';
import { resolveBaseImage } from '../image/resolve-base-image.js';
import { log } from '../log.js';
import { runtimePaths, type RuntimePaths } from '../paths.js';
import { ProgramError } from '../process/run-program.js';
import { buildQemuArgv } from '../qemu/build-qemu-argv.js';
import { chooseAccel, describeQemuFailure, fallbackWarning, looksLikeKvmFailure, refuseTcgFor } from '../qemu/probe-accel.js';
import { startShares } from '../share/start-shares.js';
import { prepareFirmware } from '../qemu/ovmf.js';
import type { QemuPlan } from '../qemu/qemu-plan.js';
import { startQemu, type StartedQemu, type VmEnd } from '../qemu/start-qemu.js';
import { diskStamp, watchKvmStart, type KvmStartOutcome } from '../qemu/watch-kvm-start.js';
import { needsVhostUserWithoutMsix, probeQemuVersion } from '../snabb/qemu-version.js';
import { claimRunDir, readState, writeState } from './claim-run-dir.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { CleanupStack } from './cleanup-stack.js';
import { onStopSignal } from './signals.js';

/** A stop signal arrived while the VM was still being set up. */
class Interrupted extends Error {}

/**
 * Config → plan → apply → supervise → teardown. Returns the exit code; whatever happens, everything the run
 * made is removed before it returns.
 */
export async function runVm(config: VmConfig): Promise<ExitCode> {
  const cleanup = new CleanupStack();
  const paths = runtimePaths(config.runDir);
  let signalled: NodeJS.Signals | undefined;
  let onSignal: (() => void) | undefined;
  const stopSetup = new AbortController(); // ends a download at once
  const unhook = onStopSignal((signal) => {
    signalled = signal;
    stopSetup.abort(new Interrupted());
    if (onSignal) log.info(`${signal}: shutting the VM down (ACPI powerdown, up to ${config.stopTimeoutSec} s)`);
    else log.info(`${signal}: stopping before the VM has started`);
    onSignal?.();
  });
  /** between start steps: give up at once when a stop was asked for */
  const checkpoint = () => {
    if (signalled) throw new Interrupted();
  };

  try {
    checkNetworkHost(config.net); // privileges for --net nat/bridge: fail before anything exists (exit 4)
    await claimRunDir(paths, config.name, cleanup);
    const base = await resolveBaseImage(config, process.env, stopSetup.signal);
    checkpoint();
    // a real probe (a test guest under KVM), not just an open() of /dev/kvm; its result holds for the run
    const choice = await chooseAccel(config.accel, {
      qemuBinary: config.qemuBinary,
      firmware: paths.kvmProbeFirmware,
      device: config.kvmDevice,
      machine: config.machine,
      ...(config.cpuModel !== undefined ? { cpuModel: config.cpuModel } : {}),
    });
    let { accel, fallbackReason } = choice;
    const disk = await prepareVmDisk(base, config, paths, cleanup);
    const extraDisks = await prepareExtraDisks(config, paths, cleanup);
    const uefi = await prepareFirmware(config, base, disk, paths, cleanup);
    checkpoint();

    // eth0, then the Snabb ports (eth1..N), then the seed that tells the guest how to configure them all.
    const vnc = await planVnc(config, paths);
    const network = await applyNetwork(config, paths, cleanup, launcherPorts(config));
    checkpoint();
    const ports = await startPorts(config, paths, cleanup, accel, stopSetup.signal);
    checkpoint();
    const guestNics = [...(network.guestNic ? [network.guestNic] : []), ...ports.guestNics];
    const shares = await startShares(config, paths, cleanup);
    checkpoint();
    const seed = await writeSeed(config, paths, guestNics, cleanup, shares.mounts);
    checkpoint();

    const plan: QemuPlan = {
      binary: config.qemuBinary,
      name: config.name,
      accel,
      cpus: config.cpus,
      memoryMiB: config.memoryMiB,
      // virtiofsd maps the guest's memory, as Snabb does: shared, from hugepages when Snabb has them, else memfd
      memory: shares.needsSharedMemory && ports.memory.kind === 'anonymous' ? { kind: 'memfd' } : ports.memory,
      disk,
      extraDisks,
      diskBus: config.diskBus,
      nics: [...(network.nic ? [network.nic] : []), ...ports.nics],
      paths,
      vhostUserWithoutMsix: ports.vhostUserWithoutMsix,
      machine: config.machine,
      shares: shares.plans,
      pointer: config.pointer,
      extraArgs: config.qemuArgs,
    };
    if (config.cpuModel !== undefined) plan.cpuModel = config.cpuModel;
    if (base.kind === 'iso') plan.cdrom = base.path;
    if (seed !== undefined) plan.seed = seed;
    if (uefi !== undefined) plan.uefi = uefi;
    if (vnc !== undefined) plan.vnc = vnc;

    await startConsoles(config, paths, cleanup);
    const diskBefore = diskStamp(disk);
    const launch = await startQemuWatched(plan, config, paths, cleanup, stopSetup.signal);
    checkpoint();
    if ('end' in launch) return reportEnd(launch.end);
    const { started } = launch;
    accel = plan.accel;
    fallbackReason = launch.fallbackReason ?? fallbackReason;
    await writeState(paths, { ...readState(paths)!, accel, ...(fallbackReason !== undefined ? { accelFallback: fallbackReason } : {}), qemuPid: started.program.pid });
    await attachConsoles(config, paths, started, cleanup);
    log.info(`VM '${config.name}' is running (${accel}, ${config.cpus} vCPU, ${config.memoryMiB} MiB)`);
    checkpoint();
    // --accel kvm: no fallback, but a guest that hangs under KVM is not left to hang in silence
    if (accel === 'kvm' && config.accel === 'kvm') void watchKvmStart(started, { serialLog: paths.serialLog, disk, diskBefore }).then(warnIfStuck);

    const stopRequested = new Promise<VmEnd>((resolve) => {
      onSignal = () => resolve(started.stop(config.stopTimeoutSec * 1000));
    });
    const end = await Promise.race([started.ended, stopRequested]);
    return reportEnd(end);
  } catch (err) {
    if (err instanceof Interrupted) {
      log.info('stopped before the VM started');
      return ExitCode.Failure;
    }
    throw err;
  } finally {
    await cleanup.unwind();
    unhook();
  }
}

/** Ports the launcher serves itself, which nat mode must not forward to the VM. */
function launcherPorts(config: VmConfig): number[] {
  return [
    ...(config.vncDisplay !== undefined ? [5900 + config.vncDisplay] : []),
    ...(config.webPort !== undefined ? [config.webPort] : []),
    ...config.forwardExclude,
  ];
}

function reportEnd(end: VmEnd): ExitCode {
  switch (end.how) {
    case 'guest-shutdown':
      log.info('the guest powered off');
      return ExitCode.Ok;
    case 'forced':
      return ExitCode.Forced;
    case 'crashed': {
      const how = end.exit.signal ? `was killed by ${end.exit.signal}` : `exited with code ${end.exit.code}`;
      log.error(`QEMU ${how} without a guest shutdown${end.qemuLogTail ? `: ${end.qemuLogTail.replace(/\n/g, ' | ')}` : ''}`);
      return ExitCode.Failure;
    }
  }
}

/**
 * Starts QEMU. Under --accel auto with KVM (the probe passed), a broken nested KVM can still abort QEMU or hang
 * the guest after its firmware: watch the first seconds, before the consoles attach, and restart once under TCG
 * with the fallback warning while that loses nothing (no OS output yet, the disk unwritten). Returns the QEMU
 * that runs, or how the VM ended when it died under KVM and could not be restarted.
 */
async function startQemuWatched(
  plan: QemuPlan,
  config: VmConfig,
  paths: RuntimePaths,
  cleanup: CleanupStack,
  signal: AbortSignal,
): Promise<{ started: StartedQemu; fallbackReason?: string } | { end: VmEnd }> {
  const watch = plan.accel === 'kvm' && config.accel === 'auto';
  const files = { serialLog: paths.serialLog, disk: plan.disk, diskBefore: diskStamp(plan.disk) };
  let started: StartedQemu | undefined;
  /** why KVM failed this guest, once it has */
  let reason: string;
  try {
    started = await startQemu(buildQemuArgv(plan), paths.qmpSocket, paths.qemuLog);
  } catch (err) {
    // QEMU that died under KVM before it even served QMP (an abort at vCPU setup)
    if (!watch || !(err instanceof ProgramError) || err.exit === undefined) throw err;
    if (!looksLikeKvmFailure(err.exit, err.stderrTail) || diskStamp(plan.disk) !== files.diskBefore) throw err;
    reason = `under KVM, ${describeQemuFailure(err.exit, err.stderrTail)}`;
  }
  if (started !== undefined) {
    const first = started;
    cleanup.defer('stop QEMU', () => first.stop(0));
    if (!watch) return { started };
    const outcome = await watchKvmStart(started, files, { signal });
    if (outcome.how === 'progressed' || signal.aborted) return { started };
    if (!outcome.restartable) {
      if (outcome.how === 'died') return { end: await started.ended };
      warnIfStuck(outcome);
      return { started };
    }
    reason = outcome.reason;
    await quitQemu(started);
  }
  refuseTcgFor(config.cpuModel, reason!);
  log.warn(fallbackWarning(reason!));
  plan.accel = 'tcg';
  plan.vhostUserWithoutMsix = needsVhostUserWithoutMsix(await probeQemuVersion(config.qemuBinary), 'tcg');
  const restarted = await startQemu(buildQemuArgv(plan), paths.qmpSocket, paths.qemuLog);
  cleanup.defer('stop QEMU', () => restarted.stop(0));
  return { started: restarted, fallbackReason: reason! };
}

/** A guest that stopped under KVM and cannot be restarted under TCG without losing its work: say so, once. */
function warnIfStuck(outcome: KvmStartOutcome): void {
  if (outcome.how !== 'stuck') return;
  log.warn(`${outcome.reason}. KVM may be broken on this host (nested virtualization?); try --accel tcg`);
}

/** Ends a QEMU whose guest never got going under KVM: quit over QMP, then signals. */
async function quitQemu(qemu: StartedQemu): Promise<void> {
  await Promise.race([qemu.qmp.execute('quit').catch(() => {}), qemu.ended]);
  await Promise.race([qemu.ended, sleep(2000)]);
  await qemu.program.stop(2000);
}
