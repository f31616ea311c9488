import { runProgram } from '../process/run-program.js';

/** 'QEMU emulator version 7.2.22 (Debian ...)' → [7, 2]; undefined when it doesn't say. Pure. */
export function parseQemuVersion(text: string): [number, number] | undefined {
  const m = /version (\d+)\.(\d+)/.exec(text);
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

/**
 * QEMU before 8 segfaults under TCG when a vhost-user virtio-net device uses MSI-X (msix_set_vector_notifiers);
 * `vectors=0` avoids it. QEMU 10 runs vhost-user with MSI-X under TCG (checked), and KVM never needed it. An
 * unknown version under TCG gets the workaround: it costs only interrupt performance. Pure.
 */
export function needsVhostUserWithoutMsix(version: [number, number] | undefined, accel: 'kvm' | 'tcg'): boolean {
  if (accel !== 'tcg') return false;
  return version === undefined || version[0] < 8;
}

export async function probeQemuVersion(binary: string): Promise<[number, number] | undefined> {
  try {
    return parseQemuVersion((await runProgram([binary, '--version'], { timeoutMs: 10_000 })).stdout);
  } catch {
    return undefined; // QEMU itself will report that it is missing
  }
}
