import type { NicPlan, QemuPlan, SharePlan } from './qemu-plan.js';

/**
 * A file name as the value of a QEMU option list (file=, path=, mem-path=, logfile=): QEMU splits the list at
 * commas, and reads ',,' as one comma of the value. Without this, /u/debian-12,netinst.iso is two options.
 */
export const optionValue = (path: string) => path.replace(/,/g, ',,');

/** A QEMU server socket that doesn't wait for its client. */
const serverSocket = (id: string, path: string) => `socket,id=${id},path=${optionValue(path)},server=on,wait=off`;

/** The machine type a VM gets without --machine (and the KVM probe too). */
export const MACHINE_TYPE = 'q35';

/**
 * The -cpu a VM gets: the user's --cpu-model, else host under KVM; under TCG max gives the guest a modern
 * feature set (x86-64-v2 and up), as RHEL 9 and its kin need.
 */
export const cpuModel = (accel: 'kvm' | 'tcg', chosen?: string) => chosen ?? (accel === 'kvm' ? 'host' : 'max');

/** The CPU models only KVM can give (the host's own CPU): QEMU refuses them under TCG. */
export const isKvmOnlyCpuModel = (model: string) => /^host(,|$)/.test(model);

/** Renders the plan into QEMU's argv. Pure: no probing, no files touched. Grouped by concern, as Lima does. */
export function buildQemuArgv(plan: QemuPlan): string[] {
  return [
    plan.binary,
    ...machineArgs(plan),
    ...firmwareArgs(plan),
    ...memoryArgs(plan),
    ...diskArgs(plan),
    ...plan.nics.flatMap((nic, i) => nicArgs(nic, i, plan.vhostUserWithoutMsix)),
    ...shareArgs(plan.shares ?? []),
    ...controlArgs(plan),
    ...displayArgs(plan),
    ...pointerArgs(plan.pointer),
    // --qemu-arg: last, so it can add to or override what came before (QEMU's later options mostly win)
    ...(plan.extraArgs ?? []),
  ];
}

function machineArgs(plan: QemuPlan): string[] {
  return [
    '-name', `${plan.name},process=snabbvm-${plan.name}`,
    '-nodefaults', '-no-user-config',
    '-machine', plan.machine ?? MACHINE_TYPE,
    '-accel', plan.accel,
    '-cpu', cpuModel(plan.accel, plan.cpuModel),
    '-smp', String(plan.cpus),
    '-rtc', 'base=utc',
    // entropy for the guest's first boot: SSH host key generation otherwise waits on the pool
    '-device', 'virtio-rng-pci',
  ];
}

function memoryArgs(plan: QemuPlan): string[] {
  const size = `${plan.memoryMiB}M`;
  const mem = plan.memory;
  switch (mem.kind) {
    case 'anonymous':
      return ['-m', size];
    case 'hugetlbfs': {
      const bind = mem.hostNode === undefined ? '' : `,host-nodes=${mem.hostNode},policy=bind`;
      return ['-m', size, '-object', `memory-backend-file,id=mem0,size=${size},mem-path=${optionValue(mem.dir)},share=on,prealloc=on${bind}`, '-numa', 'node,memdev=mem0'];
    }
    case 'memfd':
      return ['-m', size, '-object', `memory-backend-memfd,id=mem0,size=${size},share=on`, '-numa', 'node,memdev=mem0'];
  }
}

function firmwareArgs(plan: QemuPlan): string[] {
  if (plan.uefi === undefined) return []; // SeaBIOS, QEMU's default
  return [
    '-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${optionValue(plan.uefi.code)}`,
    '-drive', `if=pflash,format=raw,unit=1,file=${optionValue(plan.uefi.vars)}`,
  ];
}

/**
 * The boot disk and the extra disks, in order, on the chosen bus; then an ISO's CD-ROM and the seed. On q35 the
 * built-in AHCI controller (buses ide.0 to ide.5, one disk each) is SATA; IDE is a PIIX3 controller added for it
 * (buses pata.0 and pata.1, two units each), for guests without an AHCI driver.
 */
function diskArgs(plan: QemuPlan): string[] {
  const disks = [plan.disk, ...(plan.extraDisks ?? [])];
  const bus = plan.diskBus ?? 'virtio';
  const args: string[] = [];
  if (bus === 'scsi') args.push('-device', 'virtio-scsi-pci,id=scsi0');
  if (bus === 'ide') args.push('-device', 'piix3-ide,id=pata');
  disks.forEach((file, i) => {
    const drive = `file=${optionValue(file)},format=qcow2`;
    if (bus === 'virtio') {
      args.push('-drive', `${drive},if=virtio,discard=unmap`);
      return;
    }
    args.push('-drive', `${drive},if=none,id=disk${i},discard=unmap`, '-device', `${diskDevice(bus, i, plan.cdrom === undefined)},drive=disk${i}`);
  });
  if (plan.cdrom !== undefined) {
    // boot the ISO once; a reboot after an installer has run then starts from the disk
    const port = bus === 'ide' ? 'pata.1,unit=1' : `ide.${bus === 'sata' ? disks.length : 0}`;
    args.push('-drive', `file=${optionValue(plan.cdrom)},format=raw,if=none,id=cd0,media=cdrom,readonly=on`, '-device', `ide-cd,drive=cd0,bus=${port}`, '-boot', 'once=d');
  }
  if (plan.seed !== undefined) args.push('-drive', `file=${optionValue(plan.seed)},format=raw,if=virtio,readonly=on`);
  return args;
}

/**
 * The i-th disk's device on a bus other than virtio. The boot disk (0) gets bootindex=0, or SeaBIOS may try the
 * virtio seed first; not with an ISO, whose `-boot once=d` the firmware would not combine with a bootindex.
 */
function diskDevice(bus: 'scsi' | 'sata' | 'ide', i: number, bootFirst: boolean): string {
  const bootindex = i === 0 && bootFirst ? ',bootindex=0' : '';
  switch (bus) {
    case 'scsi':
      return `scsi-hd,bus=scsi0.0,scsi-id=${i}${bootindex}`;
    case 'sata':
      return `ide-hd,bus=ide.${i}${bootindex}`;
    case 'ide':
      return `ide-hd,bus=pata.${i >> 1},unit=${i & 1}${bootindex}`;
  }
}

function nicArgs(nic: NicPlan, index: number, withoutMsix: boolean): string[] {
  const id = `net${index}`;
  const device = `virtio-net-pci,netdev=${id},mac=${nic.mac}`;
  switch (nic.kind) {
    case 'tap':
      return ['-netdev', `tap,id=${id},ifname=${nic.ifname},script=no,downscript=no`, '-device', nic.mtu !== undefined ? `${device},host_mtu=${nic.mtu}` : device];
    case 'user': {
      const fwd = nic.forwards.map((f) => `,hostfwd=${f.proto}::${f.hostPort}-:${f.guestPort}`).join('');
      return ['-netdev', `user,id=${id}${fwd}`, '-device', device];
    }
    case 'vhost-user':
      // QEMU is the server, so a backend (Snabb) can die, restart and reconnect while the guest runs
      return [
        '-chardev', `socket,id=chr${index},path=${optionValue(nic.socket)},server=on,wait=off`,
        '-netdev', `vhost-user,id=${id},chardev=chr${index}`,
        '-device', withoutMsix ? `${device},vectors=0` : device,
      ];
  }
}

function shareArgs(shares: SharePlan[]): string[] {
  return shares.flatMap((share, i) => {
    if (share.kind === 'virtiofs') {
      return ['-chardev', `socket,id=fs${i},path=${optionValue(share.socket)}`, '-device', `vhost-user-fs-pci,chardev=fs${i},tag=${share.tag}`];
    }
    // mapped-xattr: what the guest creates is a plain file on the host, its owner and mode kept in xattrs, so a
    // guest's symlink, device node or setuid file never becomes one on the host; QEMU never follows a symlink there
    return [
      '-fsdev', `local,id=fs${i},path=${optionValue(share.hostDir)},security_model=mapped-xattr,fmode=0644,dmode=0755`,
      '-device', `virtio-9p-pci,fsdev=fs${i},mount_tag=${share.tag}`,
    ];
  });
}

/**
 * An absolute pointer, as a VNC client's is: a USB tablet for guests with USB HID (installers, desktops,
 * Windows) and a virtio tablet for those without USB (Debian's cloud kernel has virtio-input but no USB). The
 * guest drives whichever it has a driver for, and QEMU sends the pointer to the one the guest last activated.
 */
function pointerArgs(pointer: QemuPlan['pointer']): string[] {
  if (pointer !== 'tablet') return [];
  return ['-device', 'qemu-xhci,id=usb', '-device', 'usb-tablet,bus=usb.0', '-device', 'virtio-tablet-pci'];
}

function controlArgs(plan: QemuPlan): string[] {
  const p = plan.paths;
  return [
    '-chardev', serverSocket('qmp', p.qmpSocket), '-mon', 'chardev=qmp,mode=control',
    '-chardev', serverSocket('qmptools', p.qmpToolsSocket), '-mon', 'chardev=qmptools,mode=control',
    '-chardev', serverSocket('hmp', p.monitorSocket), '-mon', 'chardev=hmp,mode=readline',
    // the serial console: a socket for interactive use, and a log of everything for tests and `docker logs`
    '-chardev', `${serverSocket('serial0', p.serialSocket)},logfile=${optionValue(p.serialLog)},logappend=on`,
    '-serial', 'chardev:serial0',
    '-pidfile', p.qemuPidFile,
  ];
}

function displayArgs(plan: QemuPlan): string[] {
  if (plan.vnc === undefined) return ['-display', 'none'];
  const v = plan.vnc;
  const args = ['-vga', 'std', '-display', 'none'];
  let password = '';
  if (v.passwordFile !== undefined) {
    args.push('-object', `secret,id=vncpass,file=${optionValue(v.passwordFile)}`);
    password = ',password-secret=vncpass';
  }
  args.push('-vnc', `${v.listen}:${v.display}${password}`);
  if (v.webSocket !== undefined) args.push('-vnc', `unix:${optionValue(v.webSocket)},id=web${password}`);
  return args;
}
