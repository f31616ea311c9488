import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * Stand-ins for QEMU on a host whose KVM is broken (passed to the launcher as --qemu), for tests on machines
 * whose KVM works or that have none. Without `-accel kvm` each execs the real qemu-system-x86_64 unchanged, so
 * the TCG fallback boots the real guest.
 *
 * - abort: under -accel kvm, QEMU's own MSR assertion (nested virtualization without the right MSRs) and SIGABRT;
 * - hang: under -accel kvm, hangs without running guest code;
 * - abort-after-probe: the KVM probe (its -bios kvm-probe.bin) passes, run by the real QEMU under TCG; the VM
 *   under -accel kvm then aborts as above;
 * - stall-after-probe: the probe passes; the VM under -accel kvm runs, under TCG in KVM's place, a firmware of
 *   ours that prints SeaBIOS's and GRUB's banners to the serial port and halts: output, then nothing, the same
 *   instruction pointer (what a broken nested KVM showed).
 */
export type StandInKind = 'abort' | 'hang' | 'abort-after-probe' | 'stall-after-probe';

/** What QEMU prints before it dies of SIGABRT on such a host (platform-facts.md, issue 14). */
export const MSR_ASSERTION = "qemu-system-x86_64: ../target/i386/kvm/kvm.c:3877: kvm_buf_set_msrs: Assertion `ret == cpu->kvm_msr_buf->nmsrs' failed.";
export const STALL_BANNER = 'Welcome to GRUB!';

export function realQemu(): string {
  return execFileSync('bash', ['-c', 'command -v qemu-system-x86_64'], { encoding: 'utf8' }).trim();
}

/** Writes the stand-in (and the stall firmware it may need) into dir; returns its path. */
export function writeStandInQemu(dir: string, kind: StandInKind): string {
  const file = path.join(dir, `qemu-${kind}`);
  const stallFirmware = path.join(dir, 'stall-firmware.bin');
  if (kind === 'stall-after-probe') writeFileSync(stallFirmware, buildStallFirmware());
  const underKvm = {
    abort: 'msr_abort',
    hang: 'exec sleep 3600',
    'abort-after-probe': 'if [[ $probe == yes ]]; then exec "$real" "${as_tcg[@]}"; fi; msr_abort',
    'stall-after-probe': `if [[ $probe == yes ]]; then exec "$real" "\${as_tcg[@]}"; fi; exec "$real" "\${as_tcg[@]}" -bios ${stallFirmware}`,
  }[kind];
  writeFileSync(
    file,
    `#!/bin/bash
# stand-in QEMU for a host with a broken KVM (${kind}), written by snabbvm's tests
real=${realQemu()}
msr_abort() {
  echo "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x2000000c8b" >&2
  echo "${MSR_ASSERTION.replace(/`/g, '\\`')}" >&2
  kill -ABRT $$
}
kvm=no; probe=no; prev=; as_tcg=()
for a in "$@"; do
  next=$a
  if [[ $prev == -accel && $a == kvm ]]; then kvm=yes; next=tcg; fi
  if [[ $prev == -cpu && $a == host ]]; then next=max; fi
  [[ $a == *kvm-probe.bin ]] && probe=yes
  as_tcg+=("$next"); prev=$a
done
if [[ $kvm == yes ]]; then
  ${underKvm}
fi
exec "$real" "$@"
`,
    { mode: 0o755 },
  );
  return file;
}

/**
 * A 64 KiB -bios image: from the reset vector it jumps to its start, writes the banners to COM1 (port 0x3f8)
 * byte by byte, then halts with interrupts off.
 */
export function buildStallFirmware(): Buffer {
  const image = Buffer.alloc(0x10000, 0xf4);
  const text = Buffer.from(`SeaBIOS (version stand-in)\r\nBooting from Hard Disk...\r\n${STALL_BANNER}\r\n`, 'latin1');
  const code = [
    0xba, 0xf8, 0x03, //  0: mov dx, 0x3f8
    0xbe, 0x13, 0x00, //  3: mov si, text (at 19)
    0x2e, 0xac, //        6: cs lodsb
    0x84, 0xc0, //        8: test al, al
    0x74, 0x03, //       10: jz 15
    0xee, //             12: out dx, al
    0xeb, 0xf7, //       13: jmp 6
    0xfa, //             15: cli
    0xf4, //             16: hlt
    0xeb, 0xfd, //       17: jmp 16
  ];
  Buffer.from(code).copy(image, 0);
  text.copy(image, code.length);
  image[code.length + text.length] = 0;
  Buffer.from([0xe9, 0x0d, 0x00]).copy(image, 0xfff0); // reset vector: jmp 0 (0xfff3 + 0x000d wraps to 0)
  return image;
}
