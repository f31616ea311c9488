/**
 * What UEFI costs at boot under TCG: time from the launcher's start to a cloud-init marker on the serial console,
 *   - the BIOS fixture (MBR, GRUB for i386-pc) under SeaBIOS,
 *   - its UEFI-only variant (test/fixtures/build-uefi-image.sh: GPT, GRUB for x86_64-efi) under OVMF,
 * both picked by --boot auto, alternating, same guest otherwise (TCG, 1 vCPU, 1 GiB, --net user). Prints each
 * round, the medians and UEFI's time as a multiple of BIOS's, with the load average before each boot.
 *
 * Run: node dist/bench/boot-firmware.js [rounds]   (root; hold /tmp/snabbvm-vm-tests.lock on a shared machine)
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { cloudImagePath, uefiImagePath } from '../test/helpers/fixtures.js';
import { startLauncher } from '../test/helpers/launcher.js';

const rounds = Number(process.argv[2] ?? 1);
const MARKER = 'SNABBVM-BENCH-FIRMWARE';
const work = mkdtempSync(path.join(tmpdir(), 'snabbvm-bench-firmware-'));
writeFileSync(path.join(work, 'user-data'), `#cloud-config\nruncmd:\n  - echo ${MARKER} > /dev/ttyS0\n`);

async function timeBoot(image: string, name: string): Promise<number> {
  const t0 = performance.now();
  const vm = startLauncher(['--accel', 'tcg', '--net', 'user', '--vnc', 'none', '--web', 'none', '--console', 'stdio', '--stop-timeout', '0', '--name', name, '--run-dir', path.join(work, name), '-u', 'user-data', image], { cwd: work });
  await vm.waitFor(new RegExp(`^${MARKER}`, 'm'), 1_200_000);
  const t = performance.now() - t0;
  vm.child.kill('SIGTERM');
  await vm.exited;
  return t;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

const images = { bios: cloudImagePath(), uefi: uefiImagePath() };
const times = { bios: [] as number[], uefi: [] as number[] };
try {
  for (let round = 1; round <= rounds; round++) {
    const load = loadavg()[0]!.toFixed(2);
    times.bios.push(await timeBoot(images.bios, 'bench-bios'));
    times.uefi.push(await timeBoot(images.uefi, 'bench-uefi'));
    console.log(`round ${round} (load ${load}): BIOS ${seconds(times.bios.at(-1)!)}, UEFI ${seconds(times.uefi.at(-1)!)}`);
  }
  const [bios, uefi] = [median(times.bios), median(times.uefi)];
  console.log(`median: BIOS ${seconds(bios)}, UEFI ${seconds(uefi)}: UEFI takes ${(uefi / bios).toFixed(2)}x BIOS's time`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
