import { closeSync, openSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import type { AccelMode } from '../config/config.js';
import { hostError } from '../errors.js';
import { log } from '../log.js';
import { ProgramError, runProgram } from '../process/run-program.js';
import { cpuModel, isKvmOnlyCpuModel, MACHINE_TYPE } from './build-qemu-argv.js';

/** The accelerator a run uses, and why KVM is not it when auto fell back. */
export interface AccelChoice {
  accel: 'kvm' | 'tcg';
  /** set when --accel auto wanted KVM and could not have it: the reason, in QEMU's words where it gave some */
  fallbackReason?: string;
}

/** What the one-line warnings and `snabbvm status` say about a fallback. */
export const fallbackWarning = (reason: string) => `KVM does not work on this host (${reason}): running under TCG, 10-50x slower`;

/** Why /dev/kvm can't be used, in words a user can act on; undefined when it opens read-write. */
export function probeKvm(device = '/dev/kvm'): string | undefined {
  try {
    closeSync(openSync(device, 'r+'));
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      return `${device} does not exist: enable virtualization in the BIOS, load kvm_intel or kvm_amd, and pass the device to the container (--privileged or --device /dev/kvm)`;
    }
    if (code === 'EACCES' || code === 'EPERM') return `${device} cannot be opened read-write (${code}): run the container with --privileged or --device /dev/kvm`;
    return `${device} cannot be opened (${code})`;
  }
}

/** What the VM will run with, so that the KVM probe tries the same. */
export interface AccelOptions {
  qemuBinary: string;
  firmware: string;
  device?: string;
  /** -machine; MACHINE_TYPE when not given */
  machine?: string;
  /** --cpu-model; undefined: host under KVM, max under TCG */
  cpuModel?: string;
}

/**
 * tcg: no probe. auto and kvm: /dev/kvm must open, and then a test guest must run under KVM with the QEMU
 * binary, machine type and CPU model the VM will get (probeGuestCode). auto falls back to TCG with a one-line
 * warning, unless the CPU model is one only KVM has (host): then, as with kvm, it exits 4 with the reason.
 */
export async function chooseAccel(mode: AccelMode, options: AccelOptions): Promise<AccelChoice> {
  if (mode === 'tcg') return { accel: 'tcg' };
  const missing = probeKvm(options.device);
  if (missing !== undefined) {
    if (mode === 'kvm') throw hostError(`--accel kvm: ${missing}; or use --accel tcg (slow software emulation)`);
    refuseTcgFor(options.cpuModel, missing);
    log.warn(`KVM is not available (${missing}): running under TCG, 10-50x slower`);
    return { accel: 'tcg', fallbackReason: missing };
  }
  const probe = await probeGuestCode({ ...options, accel: 'kvm' });
  if (probe.ok) {
    log.info(`KVM works: a test guest ran in ${probe.ms} ms`);
    return { accel: 'kvm' };
  }
  if (mode === 'kvm') throw hostError(`--accel kvm: KVM does not work on this host: ${probe.reason}; use --accel tcg (slow software emulation)`);
  refuseTcgFor(options.cpuModel, probe.reason);
  log.warn(fallbackWarning(probe.reason));
  return { accel: 'tcg', fallbackReason: probe.reason };
}

/** A fallback to TCG cannot keep a KVM-only CPU model: say so and stop (exit 4), rather than let QEMU fail. */
export function refuseTcgFor(model: string | undefined, kvmReason: string): void {
  if (model !== undefined && isKvmOnlyCpuModel(model)) {
    throw hostError(`--cpu-model ${model} needs KVM, and KVM does not work here (${kvmReason}); use --cpu-model max or a named model such as Skylake-Client to run under TCG`);
  }
}

/** The byte the test guest writes to isa-debug-exit; QEMU then exits with (byte << 1) | 1. */
const PROBE_BYTE = 0x2a;
export const PROBE_EXIT_CODE = (PROBE_BYTE << 1) | 1;
/** A hanging KVM is given up on after this long; a working one answers in a fraction of a second. */
export const PROBE_TIMEOUT_MS = 5000;

/**
 * A 64 KiB firmware image of our own, loaded with -bios. The CPU starts in real mode at the reset vector, 16 bytes
 * below the image's end, where the code writes PROBE_BYTE to isa-debug-exit (port 0xf4) and halts. So QEMU
 * exits with PROBE_EXIT_CODE only if guest code ran. (QEMU wants a -bios image in multiples of 64 KiB.)
 */
export function buildProbeFirmware(): Buffer {
  const image = Buffer.alloc(0x10000, 0xf4); // hlt everywhere else
  const code = [
    0xb0, PROBE_BYTE, // mov al, PROBE_BYTE
    0xe6, 0xf4, //       out 0xf4, al
    0xfa, //             cli
    0xf4, //             hlt
    0xeb, 0xfd, //       jmp back to hlt
  ];
  Buffer.from(code).copy(image, 0xfff0);
  return image;
}

export type ProbeResult = { ok: true; ms: number } | { ok: false; ms: number; reason: string };

/**
 * Runs the probe firmware under the given accelerator, with the VM's machine type and CPU model, and checks that
 * its code ran. Gives up after timeoutMs (a hanging KVM). The reason on failure is QEMU's own, in one line.
 */
export async function probeGuestCode(options: ProbeOptions): Promise<ProbeResult> {
  const firmware = options.firmware;
  await writeFile(firmware, buildProbeFirmware());
  try {
    return await runProbe(options, firmware);
  } finally {
    await rm(firmware, { force: true });
  }
}

type ProbeOptions = { qemuBinary: string; accel: 'kvm' | 'tcg'; firmware: string; machine?: string; cpuModel?: string; timeoutMs?: number };

async function runProbe(options: ProbeOptions, firmware: string): Promise<ProbeResult> {
  const timeoutMs = options.timeoutMs ?? PROBE_TIMEOUT_MS;
  const argv = [
    options.qemuBinary,
    '-nodefaults', '-no-user-config', '-display', 'none',
    '-machine', options.machine ?? MACHINE_TYPE, '-accel', options.accel, '-cpu', cpuModel(options.accel, options.cpuModel),
    '-m', '16', '-bios', firmware,
    '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x01',
  ];
  const t0 = Date.now();
  try {
    await runProgram(argv, { timeoutMs });
    return { ok: false, ms: Date.now() - t0, reason: `${options.accel} test guest: QEMU exited with code 0 before the guest code ran` };
  } catch (err) {
    const ms = Date.now() - t0;
    if (!(err instanceof ProgramError)) throw err;
    if (err.exit === undefined) return { ok: false, ms, reason: `${options.qemuBinary} could not be started (${(err.cause as Error | undefined)?.message ?? 'unknown error'})` };
    if (err.exit.code === PROBE_EXIT_CODE) return { ok: true, ms };
    if (err.exit.signal === 'SIGKILL' && ms >= timeoutMs) return { ok: false, ms, reason: `a test guest ran no code under ${options.accel.toUpperCase()} within ${timeoutMs / 1000} s` };
    return { ok: false, ms, reason: describeQemuFailure(err.exit, err.stderrTail) };
  }
}

/** QEMU's own reason for failing, in one line: its last two stderr lines without the program name, and how it ended. */
export function describeQemuFailure(exit: { code: number | null; signal: NodeJS.Signals | null }, stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.replace(/^\S*qemu[^\s:]*: /, '').replace(/^-accel kvm: /, '').trim())
    .filter((l) => l !== '');
  const how = exit.signal ? `QEMU was killed by ${exit.signal}` : `QEMU exited with code ${exit.code}`;
  return lines.length ? `${lines.slice(-2).join('; ')} (${how})` : how;
}

/**
 * Whether QEMU's death under KVM looks like KVM's doing (a signal such as the MSR assertion's SIGABRT, or a
 * message about KVM), not like a mistake that TCG would repeat (a bad argument, a missing file).
 */
export function looksLikeKvmFailure(exit: { code: number | null; signal: NodeJS.Signals | null }, stderr: string): boolean {
  return exit.signal !== null || /kvm/i.test(stderr);
}

/** One look at the guest: the first vCPU's instruction pointer ('no answer' if it did not answer) and the serial log's size. */
export interface ProgressSample {
  rip: string | undefined;
  serialBytes: number;
}

/**
 * Whether the guest made no progress over the last `window` samples, taken a few seconds apart: no new serial
 * output and the same instruction pointer. Output before those samples (firmware banners, "Welcome to GRUB")
 * does not count as progress: a guest that printed and then stopped is stuck too.
 */
export function guestLooksStuck(samples: ProgressSample[], window = 5): boolean {
  if (samples.length < window) return false;
  const last = samples.slice(-window);
  const sizes = new Set(last.map((s) => s.serialBytes));
  const rips = new Set(last.map((s) => s.rip));
  return sizes.size === 1 && rips.size === 1 && !rips.has(undefined);
}

/**
 * Whether the serial console shows the guest's operating system, not just its firmware and boot loader
 * (SeaBIOS, iPXE, GRUB): kernel messages with their timestamps, a login prompt, cloud-init. A guest that got
 * this far has done work a restart would repeat, and is no longer a candidate for a silent restart under TCG.
 */
export function serialShowsOs(serialText: string): boolean {
  return /\[\s*\d+\.\d{6}\]|Linux version \d|login: |cloud-init/.test(serialText);
}

/** The first vCPU's instruction pointer, from HMP `info registers` output. */
export function parseRip(infoRegisters: string): string | undefined {
  return /\bRIP=([0-9a-f]+)/i.exec(infoRegisters)?.[1] ?? /\bEIP=([0-9a-f]+)/i.exec(infoRegisters)?.[1];
}
