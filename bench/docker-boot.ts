/**
 * The launcher's overhead inside its image: time from `docker run` to a cloud-init marker on the serial console,
 *   - the launcher, as the README runs it (nat, seed, VNC, status; headless so stdout is the serial console),
 *   - a plain qemu-system-x86_64 in the same image, with a seed ISO made by xorriso and QEMU's user networking,
 * side by side in one run, alternating, same guest (fixture cloud image, TCG, 1 vCPU, 1 GiB). Also the image's size
 * against the original's 374.5 MB.
 *
 * Run: node dist/bench/docker-boot.js [rounds]   (root; builds the image like test/docker-image.test.ts does)
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { cloudImagePath } from '../test/helpers/fixtures.js';
import {
  buildBaseImage,
  buildSnabbvmImage,
  describePrivilegedWorkaround,
  DOCKER,
  docker,
  HOST_SNABB,
  imageSizeMb,
  makeUserFolder,
  ORIGINAL_IMAGE_MB,
  removeContainer,
  setUpDocker,
} from '../test/helpers/docker-image.js';

const rounds = Number(process.argv[2] ?? 1);
const IMAGE = 'snabbvm:bench';
const MARKER = 'SNABBVM-BENCH-MARKER';
const BOOT_TIMEOUT_MS = 1_200_000;

const userData = `#cloud-config\nruncmd:\n  - echo ${MARKER} > /dev/ttyS0\n`;

/** The plain boot: what a user would type in the image without the launcher. */
const plainScript = `set -e
mkdir -p /tmp/seed && cd /tmp
printf 'instance-id: bench-%s\\nlocal-hostname: bench\\n' "$(date +%s%N)" > seed/meta-data
cp /u/user_data.txt seed/user-data
xorriso -as mkisofs -quiet -V cidata -J -r -o seed.iso seed
qemu-img create -q -f qcow2 -b /u/debian-12.qcow2 -F qcow2 overlay.qcow2
exec qemu-system-x86_64 -accel tcg -machine q35 -cpu max -smp 1 -m 1024 -nodefaults -display none \\
  -drive file=overlay.qcow2,format=qcow2,if=virtio -drive file=seed.iso,format=raw,if=virtio,readonly=on \\
  -netdev user,id=n0 -device virtio-net-pci,netdev=n0 -device virtio-rng-pci -serial stdio`;

/** Seconds from `docker run` to the marker in the container's output; then the container is removed. */
async function timeToMarker(name: string, args: string[]): Promise<number> {
  await removeContainer(name);
  const t0 = Date.now();
  const child = spawn(DOCKER, ['run', '--name', name, '--rm', '--privileged', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  try {
    return await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name}: no marker in ${BOOT_TIMEOUT_MS / 1000} s:\n${out.slice(-2000)}`)), BOOT_TIMEOUT_MS);
      const onData = (b: Buffer) => {
        out += b.toString('latin1');
        if (out.includes(MARKER)) {
          clearTimeout(timer);
          resolve((Date.now() - t0) / 1000);
        }
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      child.on('close', (code) => reject(new Error(`${name} exited (${code}) before the marker:\n${out.slice(-2000)}`)));
    });
  } finally {
    await docker(['rm', '-f', name]).catch(() => {});
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
/** the 1, 5 and 15 minute load averages, as uptime shows them: the machine is shared, so every figure carries them */
const load = () => loadavg().map((l) => l.toFixed(2)).join(', ');

async function main() {
  const setup = setUpDocker();
  console.log(`docker ${setup.serverVersion}; --privileged: ${describePrivilegedWorkaround(setup)}`);
  await buildSnabbvmImage({ tag: IMAGE, baseImage: buildBaseImage(), snabb: existsSync(HOST_SNABB) ? 'local' : 'none' });
  const size = await imageSizeMb(IMAGE);

  const u = makeUserFolder('snabbvm-bench-u-', { 'debian-12.qcow2': cloudImagePath() });
  writeFileSync(path.join(u, 'user_data.txt'), userData);
  const work = mkdtempSync(path.join(tmpdir(), 'snabbvm-bench-docker-'));
  const launcher: number[] = [];
  const plain: number[] = [];
  try {
    for (let i = 0; i < rounds; i++) {
      const runs: [string, () => Promise<number>, number[]][] = [
        ['launcher', () => timeToMarker('bench-launcher', ['-i', '-v', `${u}:/u`, '-e', 'SNABBVM_ACCEL=tcg', IMAGE, '-u', 'user_data.txt', 'debian-12.qcow2']), launcher],
        ['plain qemu', () => timeToMarker('bench-plain', ['-v', `${u}:/u`, '--entrypoint', 'sh', IMAGE, '-c', plainScript]), plain],
      ];
      if (i % 2 === 1) runs.reverse();
      for (const [what, run, into] of runs) {
        const before = load();
        const s = await run();
        into.push(s);
        console.log(`round ${i + 1}: ${what}: ${s.toFixed(1)} s from docker run to the cloud-init marker (load average before: ${before}; after: ${load()})`);
      }
    }
  } finally {
    rmSync(u, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  }
  console.log(`\ndocker run -> cloud-init marker, median of ${rounds}: launcher ${median(launcher).toFixed(1)} s, plain qemu ${median(plain).toFixed(1)} s, ratio ${(median(launcher) / median(plain)).toFixed(2)}`);
  console.log(`image size: ${size.toFixed(1)} MB vs the original's ${ORIGINAL_IMAGE_MB} MB, ratio ${(size / ORIGINAL_IMAGE_MB).toFixed(2)}`);
  console.log(`load average at the end: ${load()}`);
}

await main();
