import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runtimePaths } from '../paths.js';
import { buildQemuArgv } from './build-qemu-argv.js';
import type { QemuPlan } from './qemu-plan.js';

const paths = runtimePaths('/run/snabbvm/vm1');
const base: QemuPlan = {
  binary: 'qemu-system-x86_64',
  name: 'vm1',
  accel: 'tcg',
  cpus: 2,
  memoryMiB: 1024,
  memory: { kind: 'anonymous' },
  disk: paths.overlay,
  nics: [],
  paths,
  vhostUserWithoutMsix: false,
};

/** the value that follows each occurrence of a flag */
const valuesOf = (argv: string[], flag: string) => argv.flatMap((a, i) => (a === flag ? [argv[i + 1]!] : []));

test('a plain TCG VM: accel, CPUs, memory, the overlay, control sockets and a logged serial console', () => {
  const argv = buildQemuArgv(base);
  assert.equal(argv[0], 'qemu-system-x86_64');
  assert.deepEqual(valuesOf(argv, '-accel'), ['tcg']);
  assert.deepEqual(valuesOf(argv, '-cpu'), ['max']);
  assert.deepEqual(valuesOf(argv, '-smp'), ['2']);
  assert.deepEqual(valuesOf(argv, '-m'), ['1024M']);
  assert.deepEqual(valuesOf(argv, '-drive'), ['file=/run/snabbvm/vm1/disk.qcow2,format=qcow2,if=virtio,discard=unmap']);
  assert.deepEqual(valuesOf(argv, '-mon'), ['chardev=qmp,mode=control', 'chardev=qmptools,mode=control', 'chardev=hmp,mode=readline']);
  const chardevs = valuesOf(argv, '-chardev');
  assert.ok(chardevs.includes('socket,id=qmp,path=/run/snabbvm/vm1/qmp.sock,server=on,wait=off'));
  assert.ok(chardevs.includes('socket,id=serial0,path=/run/snabbvm/vm1/serial.sock,server=on,wait=off,logfile=/run/snabbvm/vm1/serial.log,logappend=on'));
  assert.deepEqual(valuesOf(argv, '-serial'), ['chardev:serial0']);
  assert.deepEqual(valuesOf(argv, '-display'), ['none']);
  assert.deepEqual(valuesOf(argv, '-vnc'), []);
  assert.ok(argv.includes('-nodefaults'));
});

test('KVM uses the host CPU', () => {
  const argv = buildQemuArgv({ ...base, accel: 'kvm' });
  assert.deepEqual(valuesOf(argv, '-accel'), ['kvm']);
  assert.deepEqual(valuesOf(argv, '-cpu'), ['host']);
});

test('an ISO boots once from a read-only CD-ROM, and the seed is a read-only disk', () => {
  const argv = buildQemuArgv({ ...base, cdrom: '/u/install.iso', seed: paths.seedImage });
  assert.deepEqual(valuesOf(argv, '-drive'), [
    'file=/run/snabbvm/vm1/disk.qcow2,format=qcow2,if=virtio,discard=unmap',
    'file=/u/install.iso,format=raw,if=none,id=cd0,media=cdrom,readonly=on',
    'file=/run/snabbvm/vm1/seed.iso,format=raw,if=virtio,readonly=on',
  ]);
  assert.deepEqual(valuesOf(argv, '-device').filter((d) => d.startsWith('ide-cd')), ['ide-cd,drive=cd0,bus=ide.0']);
  assert.deepEqual(valuesOf(argv, '-boot'), ['once=d']);
});

test('NICs: tap, user with forwards, vhost-user as server with and without MSI-X', () => {
  const nics: QemuPlan['nics'] = [
    { kind: 'tap', mac: '02:00:00:00:00:00', ifname: 'tap0' },
    { kind: 'user', mac: '02:00:00:00:00:01', forwards: [{ proto: 'tcp', hostPort: 2222, guestPort: 22 }] },
    { kind: 'vhost-user', mac: '02:00:00:00:00:02', socket: '/run/snabbvm/vm1/snabb/vm1_eth2.sock' },
  ];
  const argv = buildQemuArgv({ ...base, nics });
  assert.deepEqual(valuesOf(argv, '-netdev'), [
    'tap,id=net0,ifname=tap0,script=no,downscript=no',
    'user,id=net1,hostfwd=tcp::2222-:22',
    'vhost-user,id=net2,chardev=chr2',
  ]);
  assert.ok(valuesOf(argv, '-chardev').includes('socket,id=chr2,path=/run/snabbvm/vm1/snabb/vm1_eth2.sock,server=on,wait=off'));
  const devices = valuesOf(argv, '-device').filter((d) => d.startsWith('virtio-net-pci'));
  assert.deepEqual(devices, [
    'virtio-net-pci,netdev=net0,mac=02:00:00:00:00:00',
    'virtio-net-pci,netdev=net1,mac=02:00:00:00:00:01',
    'virtio-net-pci,netdev=net2,mac=02:00:00:00:00:02',
  ]);
  const old = valuesOf(buildQemuArgv({ ...base, nics, vhostUserWithoutMsix: true }), '-device');
  assert.ok(old.includes('virtio-net-pci,netdev=net2,mac=02:00:00:00:00:02,vectors=0'));
  assert.ok(old.includes('virtio-net-pci,netdev=net0,mac=02:00:00:00:00:00'), 'only vhost-user NICs lose MSI-X');
});

test('shared guest memory for vhost-user: hugetlbfs bound to a NUMA node, or memfd', () => {
  const huge = buildQemuArgv({ ...base, memory: { kind: 'hugetlbfs', dir: '/dev/hugepages', hostNode: 1 } });
  assert.deepEqual(valuesOf(huge, '-object'), ['memory-backend-file,id=mem0,size=1024M,mem-path=/dev/hugepages,share=on,prealloc=on,host-nodes=1,policy=bind']);
  assert.deepEqual(valuesOf(huge, '-numa'), ['node,memdev=mem0']);
  const memfd = buildQemuArgv({ ...base, memory: { kind: 'memfd' } });
  assert.deepEqual(valuesOf(memfd, '-object'), ['memory-backend-memfd,id=mem0,size=1024M,share=on']);
});

test("VNC: display, the web console's display on a unix socket (nothing on TCP beyond the display), and a password only through a secret file", () => {
  const argv = buildQemuArgv({ ...base, vnc: { listen: '0.0.0.0', display: 1, webSocket: '/run/snabbvm/vm1/vnc-web.sock', passwordFile: '/run/snabbvm/vm1/vnc.pw' } });
  assert.deepEqual(valuesOf(argv, '-vnc'), ['0.0.0.0:1,password-secret=vncpass', 'unix:/run/snabbvm/vm1/vnc-web.sock,id=web,password-secret=vncpass']);
  assert.doesNotMatch(argv.join(' '), /websocket/, 'no websocket on a TCP port the guest could reach');
  assert.deepEqual(valuesOf(argv, '-object'), ['secret,id=vncpass,file=/run/snabbvm/vm1/vnc.pw']);
});

test('a comma in any file name is doubled in its QEMU option value: the image, the run folder, hugepages, sockets', () => {
  const commaPaths = runtimePaths('/run/snabbvm,x/vm1');
  const argv = buildQemuArgv({
    ...base,
    paths: commaPaths,
    disk: '/var/lib/snabbvm,data/vm1.qcow2',
    uefi: { code: '/usr/share/OVMF/OVMF_CODE_4M.fd', vars: '/var/lib/snabbvm,data/efi-vars.fd' },
    cdrom: '/u/debian-12,netinst.iso',
    seed: commaPaths.seedImage,
    memory: { kind: 'hugetlbfs', dir: '/dev/huge,pages' },
    nics: [{ kind: 'vhost-user', mac: '02:00:00:00:00:01', socket: '/run/snabbvm,x/vm1/snabb/p,0.sock' }],
    vnc: { listen: '0.0.0.0', display: 1, passwordFile: commaPaths.vncPasswordFile },
  });
  assert.deepEqual(valuesOf(argv, '-drive'), [
    'if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd',
    'if=pflash,format=raw,unit=1,file=/var/lib/snabbvm,,data/efi-vars.fd',
    'file=/var/lib/snabbvm,,data/vm1.qcow2,format=qcow2,if=virtio,discard=unmap',
    'file=/u/debian-12,,netinst.iso,format=raw,if=none,id=cd0,media=cdrom,readonly=on',
    'file=/run/snabbvm,,x/vm1/seed.iso,format=raw,if=virtio,readonly=on',
  ]);
  assert.ok(valuesOf(argv, '-object').includes('memory-backend-file,id=mem0,size=1024M,mem-path=/dev/huge,,pages,share=on,prealloc=on'));
  assert.ok(valuesOf(argv, '-object').includes('secret,id=vncpass,file=/run/snabbvm,,x/vm1/vnc-password'));
  const chardevs = valuesOf(argv, '-chardev');
  assert.ok(chardevs.includes('socket,id=chr0,path=/run/snabbvm,,x/vm1/snabb/p,,0.sock,server=on,wait=off'));
  assert.ok(chardevs.includes('socket,id=qmp,path=/run/snabbvm,,x/vm1/qmp.sock,server=on,wait=off'));
  assert.ok(chardevs.includes('socket,id=serial0,path=/run/snabbvm,,x/vm1/serial.sock,server=on,wait=off,logfile=/run/snabbvm,,x/vm1/serial.log,logappend=on'));
  // -pidfile takes a plain file name, not an option list
  assert.deepEqual(valuesOf(argv, '-pidfile'), ['/run/snabbvm,x/vm1/qemu.pid']);
});

test('UEFI: OVMF code as read-only pflash, the VM\'s own variables writable; none without it (SeaBIOS)', () => {
  const argv = buildQemuArgv({ ...base, uefi: { code: '/usr/share/OVMF/OVMF_CODE_4M.fd', vars: paths.efiVars } });
  assert.deepEqual(valuesOf(argv, '-drive').slice(0, 2), [
    'if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd',
    'if=pflash,format=raw,unit=1,file=/run/snabbvm/vm1/efi-vars.fd',
  ]);
  assert.ok(!buildQemuArgv(base).join(' ').includes('pflash'));
});

test('extra disks follow the boot disk in order on virtio (vdb, vdc), before the seed', () => {
  const argv = buildQemuArgv({ ...base, extraDisks: [paths.extraDisk(1), paths.extraDisk(2)], seed: paths.seedImage });
  assert.deepEqual(valuesOf(argv, '-drive'), [
    'file=/run/snabbvm/vm1/disk.qcow2,format=qcow2,if=virtio,discard=unmap',
    'file=/run/snabbvm/vm1/disk1.qcow2,format=qcow2,if=virtio,discard=unmap',
    'file=/run/snabbvm/vm1/disk2.qcow2,format=qcow2,if=virtio,discard=unmap',
    'file=/run/snabbvm/vm1/seed.iso,format=raw,if=virtio,readonly=on',
  ]);
});

test('--disk-bus scsi, sata, ide: one device per disk on its controller, the boot disk first in the boot order', () => {
  const disks = { extraDisks: [paths.extraDisk(1), paths.extraDisk(2)] };
  const devices = (bus: 'scsi' | 'sata' | 'ide', more: Partial<QemuPlan> = {}) => valuesOf(buildQemuArgv({ ...base, ...disks, diskBus: bus, ...more }), '-device').filter((d) => !d.startsWith('virtio-rng'));
  assert.deepEqual(devices('scsi'), [
    'virtio-scsi-pci,id=scsi0',
    'scsi-hd,bus=scsi0.0,scsi-id=0,bootindex=0,drive=disk0',
    'scsi-hd,bus=scsi0.0,scsi-id=1,drive=disk1',
    'scsi-hd,bus=scsi0.0,scsi-id=2,drive=disk2',
  ]);
  assert.deepEqual(devices('sata'), ['ide-hd,bus=ide.0,bootindex=0,drive=disk0', 'ide-hd,bus=ide.1,drive=disk1', 'ide-hd,bus=ide.2,drive=disk2']);
  assert.deepEqual(devices('ide'), [
    'piix3-ide,id=pata',
    'ide-hd,bus=pata.0,unit=0,bootindex=0,drive=disk0',
    'ide-hd,bus=pata.0,unit=1,drive=disk1',
    'ide-hd,bus=pata.1,unit=0,drive=disk2',
  ]);
  const drives = valuesOf(buildQemuArgv({ ...base, ...disks, diskBus: 'sata' }), '-drive');
  assert.deepEqual(drives, [0, 1, 2].map((i) => `file=${i === 0 ? paths.overlay : paths.extraDisk(i)},format=qcow2,if=none,id=disk${i},discard=unmap`));
  // an ISO: its CD-ROM on the next free port, booted once by -boot, which the firmware does not combine with bootindex
  const withIso = devices('sata', { cdrom: '/u/install.iso' });
  assert.deepEqual(withIso.slice(-1), ['ide-cd,drive=cd0,bus=ide.3']);
  assert.ok(!withIso.some((d) => d.includes('bootindex')));
  assert.deepEqual(devices('ide', { cdrom: '/u/install.iso' }).slice(-1), ['ide-cd,drive=cd0,bus=pata.1,unit=1']);
});

test('--machine and --cpu-model replace the defaults, under KVM and TCG alike', () => {
  const argv = buildQemuArgv({ ...base, machine: 'pc', cpuModel: 'Skylake-Client,-hle' });
  assert.deepEqual(valuesOf(argv, '-machine'), ['pc']);
  assert.deepEqual(valuesOf(argv, '-cpu'), ['Skylake-Client,-hle']);
  assert.deepEqual(valuesOf(buildQemuArgv({ ...base, accel: 'kvm', cpuModel: 'max' }), '-cpu'), ['max']);
  assert.deepEqual(valuesOf(buildQemuArgv(base), '-machine'), ['q35']);
});

test('the tablet pointer: a USB tablet on an xHCI controller and a virtio tablet; ps2 adds neither', () => {
  const devices = valuesOf(buildQemuArgv({ ...base, pointer: 'tablet' }), '-device');
  assert.ok(devices.includes('qemu-xhci,id=usb'));
  assert.ok(devices.includes('usb-tablet,bus=usb.0'));
  assert.ok(devices.includes('virtio-tablet-pci'));
  const ps2 = valuesOf(buildQemuArgv({ ...base, pointer: 'ps2' }), '-device');
  assert.ok(!ps2.some((d) => /tablet|xhci/.test(d)), ps2.join(' '));
});

test('shares: virtiofs as a vhost-user-fs client of its virtiofsd, 9p served by QEMU in mapped-xattr mode', () => {
  const argv = buildQemuArgv({
    ...base,
    shares: [
      { kind: 'virtiofs', tag: 'data', socket: '/run/snabbvm/vm1/shares/virtiofsd-0.sock' },
      { kind: '9p', tag: 'web', hostDir: '/srv/a,b' },
    ],
  });
  assert.ok(valuesOf(argv, '-chardev').includes('socket,id=fs0,path=/run/snabbvm/vm1/shares/virtiofsd-0.sock'));
  assert.ok(valuesOf(argv, '-device').includes('vhost-user-fs-pci,chardev=fs0,tag=data'));
  assert.deepEqual(valuesOf(argv, '-fsdev'), ['local,id=fs1,path=/srv/a,,b,security_model=mapped-xattr,fmode=0644,dmode=0755']);
  assert.ok(valuesOf(argv, '-device').includes('virtio-9p-pci,fsdev=fs1,mount_tag=web'));
});

test('--qemu-arg values come last, as given', () => {
  const argv = buildQemuArgv({ ...base, vnc: { listen: '0.0.0.0', display: 1 }, pointer: 'tablet', extraArgs: ['-smbios', 'type=1,serial=XYZ', '-device', 'virtio-balloon'] });
  assert.deepEqual(argv.slice(-4), ['-smbios', 'type=1,serial=XYZ', '-device', 'virtio-balloon']);
});
