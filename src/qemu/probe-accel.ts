import { closeSync, openSync } from 'node:fs';
import type { AccelMode } from '../config/config.js';
import { hostError } from '../errors.js';
import { log } from '../log.js';

/** Why /dev/kvm can't be used, in words a user can act on; undefined when it can. */
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

/** auto: KVM when /dev/kvm opens read-write, else TCG with a warning. kvm: KVM or exit 4. */
export function chooseAccel(mode: AccelMode, device = '/dev/kvm'): 'kvm' | 'tcg' {
  if (mode === 'tcg') return 'tcg';
  const problem = probeKvm(device);
  if (problem === undefined) return 'kvm';
  if (mode === 'kvm') throw hostError(`--accel kvm: ${problem}; or use --accel tcg (slow software emulation)`);
  log.warn(`KVM is not usable, so the VM runs under TCG software emulation, 10-50x slower: ${problem}`);
  return 'tcg';
}

/**
 * Under a broken KVM (nested virtualization without the right MSRs, as on some cloud hosts) a guest can hang
 * without a byte of output. Given samples of the vCPU's instruction pointer and of the serial log's size, taken
 * a few seconds apart, this says whether the guest has made no progress at all.
 */
export function guestLooksStuck(samples: { rip: string | undefined; serialBytes: number }[]): boolean {
  if (samples.length < 3) return false;
  const noOutput = samples.every((s) => s.serialBytes === 0);
  const rips = new Set(samples.map((s) => s.rip));
  return noOutput && rips.size === 1 && !rips.has(undefined);
}

/** The first vCPU's instruction pointer, from HMP `info registers` output. */
export function parseRip(infoRegisters: string): string | undefined {
  return /\bRIP=([0-9a-f]+)/i.exec(infoRegisters)?.[1] ?? /\bEIP=([0-9a-f]+)/i.exec(infoRegisters)?.[1];
}
