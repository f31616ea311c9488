import { statSync } from 'node:fs';
import { setInterval as every } from 'node:timers/promises';
import type { VmConfig } from '../config/config.js';
import { attachConsoles, planVnc, startConsoles } from '../console/start-consoles.js';
import { writeSeed } from '../cloudinit/write-seed.js';
import { applyNetwork } from '../network/apply-network.js';
import { checkNetworkHost } from '../network/check-network-host.js';
import { startPorts } from '../snabb/start-ports.js';
import { ExitCode } from '../errors.js';
import { prepareVmDisk } from '../image/persist-disk.js';
import { resolveBaseImage } from '../image/resolve-base-image.js';
import { log } from '../log.js';
import { runtimePaths } from '../paths.js';
import { buildQemuArgv } from '../qemu/build-qemu-argv.js';
import { chooseAccel, guestLooksStuck, parseRip } from '../qemu/probe-accel.js';
import type { QemuPlan } from '../qemu/qemu-plan.js';
import { startQemu, type StartedQemu, type VmEnd } from '../qemu/start-qemu.js';
import { claimRunDir, readState, writeState } from './claim-run-dir.js';
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
    const accel = chooseAccel(config.accel);
    const disk = await prepareVmDisk(base, config, paths, cleanup);
    checkpoint();

    // eth0, then the Snabb ports (eth1..N), then the seed that tells the guest how to configure them all.
    const vnc = await planVnc(config, paths);
    const network = await applyNetwork(config, paths, cleanup, launcherPorts(config));
    checkpoint();
    const ports = await startPorts(config, paths, cleanup, accel);
    checkpoint();
    const guestNics = [...(network.guestNic ? [network.guestNic] : []), ...ports.guestNics];
    const seed = await writeSeed(config, paths, guestNics, cleanup);
    checkpoint();

    const plan: QemuPlan = {
      binary: config.qemuBinary,
      name: config.name,
      accel,
      cpus: config.cpus,
      memoryMiB: config.memoryMiB,
      memory: ports.memory,
      disk,
      nics: [...(network.nic ? [network.nic] : []), ...ports.nics],
      paths,
      vhostUserWithoutMsix: ports.vhostUserWithoutMsix,
    };
    if (base.kind === 'iso') plan.cdrom = base.path;
    if (seed !== undefined) plan.seed = seed;
    if (vnc !== undefined) plan.vnc = vnc;

    await startConsoles(config, paths, cleanup);
    const started = await startQemu(buildQemuArgv(plan), paths.qmpSocket, paths.qemuLog);
    cleanup.defer('stop QEMU', () => started.stop(0));
    await writeState(paths, { ...readState(paths)!, accel, qemuPid: started.program.pid });
    await attachConsoles(config, paths, started, cleanup);
    log.info(`VM '${config.name}' is running (${accel}, ${config.cpus} vCPU, ${config.memoryMiB} MiB)`);
    checkpoint();
    if (accel === 'kvm') void watchForKvmStall(started, paths.serialLog);

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
 * A broken KVM (nested virtualization on some cloud hosts) can hang a guest with no output at all. Sample the
 * vCPU's instruction pointer and the serial log for 30 s and warn if neither moves, instead of a silent hang.
 */
async function watchForKvmStall(qemu: StartedQemu, serialLog: string): Promise<void> {
  const samples: { rip: string | undefined; serialBytes: number }[] = [];
  try {
    for await (const _ of every(5000)) {
      const rip = parseRip(await qemu.qmp.hmp('info registers'));
      let serialBytes = 0;
      try {
        serialBytes = statSync(serialLog).size;
      } catch {}
      samples.push({ rip, serialBytes });
      if (samples.length >= 6) break;
    }
  } catch {
    return; // QEMU went away
  }
  if (guestLooksStuck(samples)) {
    log.warn('the guest has made no progress under KVM in 30 s (same instruction pointer, no console output). KVM may be broken on this host (nested virtualization?); try --accel tcg');
  }
}
