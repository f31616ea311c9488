import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The repo's root, from dist/test/helpers or test/helpers. */
export const repoRoot = fileURLToPath(new URL(import.meta.url.includes('/dist/') ? '../../../' : '../../', import.meta.url));

const cloudImages = new Map<string, string>();
/**
 * The Debian cloud image fixture, built by test/fixtures/build-cloud-image.sh on first use and cached outside the
 * repo, keyed by the script's inputs. The first build takes about 90 s. Debian 12 by default; `trixie` gives
 * Debian 13, for claims about a current guest's systemd and cloud-init.
 */
export function cloudImagePath(suite: 'bookworm' | 'trixie' = 'bookworm'): string {
  let image = cloudImages.get(suite);
  if (image === undefined) {
    image = execFileSync('bash', [`${repoRoot}test/fixtures/build-cloud-image.sh`], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, SNABBVM_FIXTURE_SUITE: suite },
    }).trim();
    cloudImages.set(suite, image);
  }
  return image;
}

let pciTestHostImage: string | undefined;
/**
 * The PCI test host's image (test/fixtures/build-pci-test-host.sh): the Debian 12 fixture with QEMU, pciutils,
 * ethtool and the full kernel (e1000e, 9p). Built on first use from the cached base, then cached itself.
 */
export function pciTestHostImagePath(): string {
  pciTestHostImage ??= execFileSync('bash', [`${repoRoot}test/fixtures/build-pci-test-host.sh`], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }).trim();
  return pciTestHostImage;
}

let innerGuestImage: string | undefined;
/**
 * The PCI test host's inner guest (test/fixtures/build-inner-guest.sh): a small disk with GRUB, the test host's
 * kernel and a busybox initramfs that pings 192.168.82.1 from 192.168.82.2/24 in rounds. Built in seconds from
 * the PCI test host's image.
 */
export function innerGuestImagePath(): string {
  innerGuestImage ??= execFileSync('bash', [`${repoRoot}test/fixtures/build-inner-guest.sh`], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }).trim();
  return innerGuestImage;
}

/** Why the VM tests cannot run here, or undefined when they can. Printed by the skip. */
export function whyNoVmTests(): string | undefined {
  if (process.getuid?.() !== 0) return 'VM tests need root (debootstrap builds the fixture image)';
  try {
    execFileSync('qemu-system-x86_64', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)';
  }
  return undefined;
}

let uefiImage: string | undefined;
/**
 * The UEFI-only variant of the Debian 12 fixture (GPT, an EFI system partition with GRUB for x86_64-efi, no BIOS
 * boot code), built by test/fixtures/build-uefi-image.sh from cloudImagePath()'s image and cached the same way.
 * About 30 s the first time, after the base image.
 */
export function uefiImagePath(): string {
  uefiImage ??= execFileSync('bash', [`${repoRoot}test/fixtures/build-uefi-image.sh`], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, SNABBVM_FIXTURE_SUITE: 'bookworm' },
  }).trim();
  return uefiImage;
}

/** Why UEFI VM tests cannot run here (no OVMF), or undefined when they can. */
export function whyNoUefiTests(): string | undefined {
  if (!existsSync('/usr/share/OVMF/OVMF_CODE_4M.fd')) return 'OVMF is not installed (apt-get install ovmf)';
  return undefined;
}
