/** A validated run configuration: every field filled in, every value checked. */
export type NetMode = 'nat' | 'bridge' | 'user' | 'none';
export type AccelMode = 'auto' | 'kvm' | 'tcg';
export type ConsoleMode = 'auto' | 'tmux' | 'stdio' | 'none';
export type SeedFormat = 'nocloud' | 'configdrive';
export type BootMode = 'auto' | 'bios' | 'uefi';
export type DiskBus = 'virtio' | 'scsi' | 'sata' | 'ide';

/** A --disk: a file the VM sees through an overlay, or a blank disk of a size. */
export type ExtraDiskSpec = { kind: 'file'; path: string } | { kind: 'blank'; sizeBytes: number };

export type ShareDriverMode = 'auto' | 'virtiofs' | '9p';
export type PointerMode = 'tablet' | 'ps2';

/** A host folder shared with the guest (--share HOSTDIR[:TAG]), mounted at /mnt/TAG */
export interface Share {
  hostDir: string;
  tag: string;
}

export type ImageRef = { kind: 'file'; path: string } | { kind: 'url'; url: string };

export interface VmConfig {
  name: string;
  image: ImageRef;
  /** port specs as given (PCI addresses or vhost-user:PATH, with options); parsed by src/snabb */
  ports: string[];
  userDataPath?: string;
  cpus: number;
  memoryMiB: number;
  accel: AccelMode;
  diskSizeBytes?: number;
  /** more disks, in order after the boot disk */
  disks: ExtraDiskSpec[];
  diskBus: DiskBus;
  boot: BootMode;
  stopTimeoutSec: number;
  runDir: string;
  cacheDir: string;
  dataDir: string;
  persist: boolean;
  /** the expected digest of a URL image: at most one of these two */
  sha256?: string;
  sha512?: string;
  hostname: string;
  sshKeys: string[];
  password?: string;
  seedFormat: SeedFormat;
  newInstance: boolean;
  net: NetMode;
  ip?: string;
  gateway?: string;
  forwards: string[];
  forwardExclude: number[];
  force: boolean;
  /** how long netdev: ports wait for their interface to appear */
  netdevTimeoutSec: number;
  /** VNC display number, or undefined for none */
  vncDisplay?: number;
  vncListen: string;
  vncPassword?: string;
  /** web console port, or undefined for none */
  webPort?: number;
  /** where the web console listens (by default where VNC does) */
  webListen: string;
  webPassword?: string;
  /** more host names the web console answers to (--web-host), besides addresses and localhost */
  webHosts: string[];
  console: ConsoleMode;
  quiet: boolean;
  qemuBinary: string;
  /** the device checked before the KVM probe runs QEMU (QEMU itself always opens /dev/kvm) */
  kvmDevice: string;
  snabbBinary: string;
  sysfsRoot: string;
  /** vendor:device IDs accepted beyond the supported NICs (--test-pci-model, tests on emulated NICs) */
  testPciModels: string[];
  hugepagesDir: string;
  shares: Share[];
  shareDriver: ShareDriverMode;
  pointer: PointerMode;
  machine: string;
  /** undefined: host under KVM, max under TCG */
  cpuModel?: string;
  /** appended to QEMU's argv as given (--qemu-arg) */
  qemuArgs: string[];
}
