/** A validated run configuration: every field filled in, every value checked. */
export type NetMode = 'nat' | 'bridge' | 'user' | 'none';
export type AccelMode = 'auto' | 'kvm' | 'tcg';
export type ConsoleMode = 'auto' | 'tmux' | 'stdio' | 'none';
export type SeedFormat = 'nocloud' | 'configdrive';

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
  stopTimeoutSec: number;
  runDir: string;
  cacheDir: string;
  dataDir: string;
  persist: boolean;
  sha256?: string;
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
}
