/**
 * One TCG boot of the fixture image with the options that shape QEMU's machine: --machine pc and --cpu-model
 * Nehalem (the guest's DMI and /proc/cpuinfo show them), --qemu-arg -smbios (the guest reads the serial number),
 * the default absolute pointer (a PointerEvent sent over VNC reaches the guest's tablet as ABS_X/ABS_Y scaled
 * from the framebuffer to 0..32767), and --share, mounted at /mnt/data by cloud-init's boothook without user
 * action: a file each way, and symlinks the guest makes towards a file beside the folder read nothing.
 *
 * The share is virtiofs: Debian 12's QEMU ships the older C virtiofsd (/usr/lib/qemu/virtiofsd); the image's
 * Debian 13 virtiofsd (Rust) is checked by test/docker-image.test.ts. 9p cannot be checked in this guest: Debian's
 * cloud kernel has no 9p (its argv is unit-tested).
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { cloudImagePath, whyNoVmTests } from './helpers/fixtures.js';
import { freeVncDisplay } from './helpers/free-port.js';
import { processesMatching, startLauncher, type LauncherRun } from './helpers/launcher.js';
import { rfbConnect } from './helpers/rfb-client.js';

const skip = whyNoVmTests();
const work = mkdtempSync(path.join(tmpdir(), 'snabbvm-share-pointer-'));
/** a TCG boot to the end of cloud-init on a busy 2-core machine */
const BOOT_MS = 900_000;
/** virtio-input and usb-tablet report 0..0x7fff; QEMU scales VNC's x from 0..width */
const ABS_MAX = 0x7fff;

/** Finds the tablet (virtio or USB), says so on the serial console, then prints every absolute position it reports. */
const POINTER_PY = `import glob, os, struct, time
def tablet():
    for d in sorted(glob.glob('/sys/class/input/event*')):
        try:
            name = open(d + '/device/name').read().strip()
        except OSError:
            continue
        if 'Tablet' in name:
            return '/dev/input/' + os.path.basename(d), name
    return None, None
deadline = time.time() + 600
dev, name = tablet()
while (dev is None or not os.path.exists(dev)) and time.time() < deadline:
    time.sleep(1)
    dev, name = tablet()
if dev is None:
    print('POINTER-NONE END', flush=True)
    raise SystemExit(1)
fd = os.open(dev, os.O_RDONLY)
print('POINTER-READY ' + name.replace(' ', '_') + ' END', flush=True)
x = y = None
while True:
    _, _, kind, code, value = struct.unpack('llHHi', os.read(fd, 24))
    if kind == 3 and code == 0:
        x = value
    elif kind == 3 and code == 1:
        y = value
    elif kind == 0 and x is not None and y is not None:
        print('POINTER-ABS %d %d END' % (x, y), flush=True)
`;

const indent = (text: string) => text.split('\n').map((l) => `      ${l}`).join('\n');
const userData = (secret: string) => `#cloud-config
ssh_genkeytypes: [ed25519]
write_files:
  - path: /root/pointer.py
    content: |
${indent(POINTER_PY)}
runcmd:
  - echo "GUEST-DMI serial=$(cat /sys/class/dmi/id/product_serial) product=$(cat /sys/class/dmi/id/product_name) END" > /dev/ttyS0
  - echo "GUEST-CPU $(grep -m1 'model name' /proc/cpuinfo | cut -d ":" -f2) END" > /dev/ttyS0
  - echo "GUEST-SHARE fs=$(grep ' /mnt/data ' /proc/mounts | cut -d' ' -f3) host-file=$(cat /mnt/data/from-host.txt) END" > /dev/ttyS0
  - echo written-by-the-guest > /mnt/data/from-guest.txt
  - ln -s ../secret.txt /mnt/data/up-link; ln -s '${secret}' /mnt/data/abs-link
  - echo "GUEST-ESCAPE rel=$(cat /mnt/data/up-link 2>/dev/null || echo none) abs=$(cat /mnt/data/abs-link 2>/dev/null || echo none) END" > /dev/ttyS0
  - python3 /root/pointer.py > /dev/ttyS0 2>&1 &
`;

let vm: LauncherRun | undefined;
after(async () => {
  if (vm && vm.child.exitCode === null && vm.child.signalCode === null) {
    vm.child.kill('SIGTERM');
    await vm.exited;
  }
  rmSync(work, { recursive: true, force: true });
}, { timeout: 300_000 });

describe('machine, CPU, raw QEMU arguments, the absolute pointer and a shared folder, in one boot', { skip }, () => {
  test('the guest sees --machine, --cpu-model and --qemu-arg; a VNC pointer arrives absolute; the share goes both ways and keeps the guest inside', { timeout: BOOT_MS + 300_000 }, async () => {
    const shared = path.join(work, 'shared folder');
    mkdirSync(shared);
    writeFileSync(path.join(shared, 'from-host.txt'), 'written-by-the-host\n');
    const secret = path.join(work, 'secret.txt');
    writeFileSync(secret, 'SNABBVM-SECRET-BESIDE-THE-SHARE\n');
    writeFileSync(path.join(work, 'user-data'), userData(secret));
    const display = await freeVncDisplay();
    const name = 'share-pointer';
    const t0 = Date.now();
    vm = startLauncher([
      '--accel', 'tcg', '--net', 'user', '--web', 'none', '--console', 'stdio', '--stop-timeout', '180',
      '--vnc', String(display), '--vnc-listen', '127.0.0.1',
      '--name', name, '--run-dir', path.join(work, 'run'), '--cache-dir', path.join(work, 'cache'),
      '--machine', 'pc', '--cpu-model', 'Nehalem',
      '--qemu-arg=-smbios', '--qemu-arg', 'type=1,serial=SNABBVM-SERIAL-42',
      '--share', `${shared}:data`,
      '-u', path.join(work, 'user-data'), cloudImagePath(),
    ]);
    await vm.waitFor(/is running \(tcg/, 180_000);
    assert.match(vm.stderr(), /shared folders by virtiofs \(.*virtiofsd.*\): .*shared folder at \/mnt\/data/);
    const qemu = (await processesMatching(`process=snabbvm-${name}`)).find((p) => p.includes('qemu-system')) ?? '';
    for (const arg of ['-machine pc ', '-cpu Nehalem ', 'vhost-user-fs-pci,chardev=fs0,tag=data', 'memory-backend-memfd', 'share=on', 'usb-tablet', 'virtio-tablet-pci', '-smbios type=1,serial=SNABBVM-SERIAL-42']) {
      assert.ok(qemu.includes(arg), `QEMU's command line has ${arg}: ${qemu}`);
    }
    assert.ok(qemu.trimEnd().endsWith('-smbios type=1,serial=SNABBVM-SERIAL-42'), '--qemu-arg comes last');

    const dmi = await vm.waitFor(/GUEST-DMI serial=(\S*) product=(.*?) END/, BOOT_MS);
    console.log(`# cloud-init's runcmd ran ${((Date.now() - t0) / 1000).toFixed(0)} s after the start: ${dmi[0]}`);
    assert.equal(dmi[1], 'SNABBVM-SERIAL-42', '--qemu-arg -smbios reached the guest');
    assert.match(dmi[2]!, /i440FX/, '--machine pc');
    const cpu = await vm.waitFor(/GUEST-CPU (.*?) END/, 60_000);
    assert.match(cpu[1]!, /Nehalem/, '--cpu-model Nehalem');

    const share = await vm.waitFor(/GUEST-SHARE fs=(\S*) host-file=(\S*) END/, 60_000);
    const escape = await vm.waitFor(/GUEST-ESCAPE rel=(\S*) abs=(\S*) END/, 60_000);
    console.log(`# ${share[0]}; ${escape[0]}`);
    assert.match(vm.stdout(), /snabbvm: shared folder data mounted at \/mnt\/data \(virtiofs\)/, 'the boothook said so on the console');
    assert.equal(share[1], 'virtiofs', 'mounted at /mnt/data by cloud-init, with no user action');
    assert.equal(share[2], 'written-by-the-host', 'a host file is seen in the guest');
    assert.equal(readFileSync(path.join(shared, 'from-guest.txt'), 'utf8'), 'written-by-the-guest\n', 'a guest file is seen on the host');
    assert.deepEqual([escape[1], escape[2]], ['none', 'none'], "the guest's symlinks lead to the guest's own files, never out of the folder");
    assert.ok(!vm.stdout().includes('SNABBVM-SECRET-BESIDE'), 'the file beside the share never reached the guest');

    const ready = await vm.waitFor(/POINTER-READY (\S+) END/, 300_000);
    console.log(`# the guest's tablet: ${ready[1]}`);
    const points = [
      { x: 100, y: 50 },
      { x: 333, y: 222 },
    ];
    const session = await rfbConnect('127.0.0.1', 5900 + display, { pointer: points });
    const { width, height } = session as { width: number; height: number };
    for (const p of points) {
      const want = { x: Math.floor((p.x * ABS_MAX) / width), y: Math.floor((p.y * ABS_MAX) / height) };
      const seen = await vm.waitFor(new RegExp(`POINTER-ABS (${want.x - 1}|${want.x}|${want.x + 1}) (${want.y - 1}|${want.y}|${want.y + 1}) END`), 120_000);
      console.log(`# VNC pointer at (${p.x}, ${p.y}) of ${width}x${height} -> guest ABS ${seen[1]} ${seen[2]} (expected about ${want.x} ${want.y})`);
    }

    vm.child.kill('SIGTERM');
    const end = await vm.exited;
    assert.equal(end.code, 0, `the guest powered off: ${vm.stderr().slice(-2000)}`);
    console.log(`# whole run ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  });
});
