/**
 * Every option of `snabbvm run`, in one table. The CLI parser, the environment reader, the help text, the README
 * and the deploy manifests' test all read it, so an option exists everywhere or nowhere.
 */
export interface OptionSpec {
  /** commander flag syntax, e.g. '-m, --memory <size>' */
  readonly flags: string;
  /** camelCase key in RawOptions */
  readonly key: keyof RawOptions;
  /** environment variable; the flag wins over it */
  readonly env: string;
  readonly description: string;
  /** what the default is, for the help text (the value itself is in defaults.ts) */
  readonly defaultText?: string;
  /** may be given more than once; in the environment the values are split on `envSeparator` */
  readonly repeatable?: boolean;
  readonly envSeparator?: string | RegExp;
  /** a flag without a value (`--persist`); its env var takes 1/0, true/false, yes/no */
  readonly boolean?: boolean;
  /** hidden from --help: for tests and for running outside a container */
  readonly hidden?: boolean;
}

/** Option values as strings, before defaults and validation. */
export interface RawOptions {
  userData?: string;
  cpus?: string;
  memory?: string;
  name?: string;
  accel?: string;
  diskSize?: string;
  disk?: string[];
  diskBus?: string;
  boot?: string;
  stopTimeout?: string;
  cacheDir?: string;
  runDir?: string;
  dataDir?: string;
  persist?: boolean;
  sha256?: string;
  digest?: string;
  hostname?: string;
  sshKey?: string[];
  password?: string;
  seedFormat?: string;
  newInstance?: boolean;
  net?: string;
  ip?: string;
  gateway?: string;
  forward?: string[];
  forwardExclude?: string[];
  force?: boolean;
  portsFromEnv?: string[];
  portOptions?: string;
  netdevTimeout?: string;
  vnc?: string;
  vncListen?: string;
  vncPassword?: string;
  web?: string;
  webListen?: string;
  webPassword?: string;
  webHost?: string[];
  console?: string;
  quiet?: boolean;
  qemu?: string;
  kvmDevice?: string;
  snabb?: string;
  sysfsRoot?: string;
  hugepagesDir?: string;
  share?: string[];
  shareDriver?: string;
  pointer?: string;
  machine?: string;
  cpuModel?: string;
  qemuArg?: string[];
  testPciModel?: string[];
}

export const runOptions: readonly OptionSpec[] = [
  { flags: '-u, --user-data <file>', key: 'userData', env: 'SNABBVM_USER_DATA', description: 'cloud-init user-data file (relative to /u)' },
  { flags: '-c, --cpus <n>', key: 'cpus', env: 'SNABBVM_CPUS', description: 'virtual CPUs', defaultText: '1' },
  { flags: '-m, --memory <size>', key: 'memory', env: 'SNABBVM_MEMORY', description: 'guest memory: MB, or with a unit (2G)', defaultText: '1024' },
  { flags: '--name <name>', key: 'name', env: 'SNABBVM_NAME', description: 'VM name: tmux session, MACs, runtime folder (env NAME also works)', defaultText: 'snabbvm' },
  { flags: '--accel <mode>', key: 'accel', env: 'SNABBVM_ACCEL', description: 'auto | kvm | tcg (auto: KVM if a test guest runs under it, else TCG with a warning)', defaultText: 'auto' },
  { flags: '--disk-size <size>', key: 'diskSize', env: 'SNABBVM_DISK_SIZE', description: "grow the VM's disk to this size (never shrinks); blank disk size for an ISO", defaultText: '10G for an ISO' },
  { flags: '--disk <file|size>', key: 'disk', env: 'SNABBVM_DISKS', repeatable: true, envSeparator: /\s+/, description: 'one more disk (vdb, vdc, ...): a file, used through an overlay and never changed, or a size such as 10G for a blank one (repeatable; the environment takes a list)' },
  { flags: '--disk-bus <bus>', key: 'diskBus', env: 'SNABBVM_DISK_BUS', description: 'virtio | scsi | sata | ide: the bus of the disks (sata or ide for systems without virtio drivers)', defaultText: 'virtio' },
  { flags: '--boot <firmware>', key: 'boot', env: 'SNABBVM_BOOT', description: 'bios | uefi | auto (auto: UEFI when the image has an EFI system partition and no BIOS boot code)', defaultText: 'auto' },
  { flags: '--stop-timeout <seconds>', key: 'stopTimeout', env: 'SNABBVM_STOP_TIMEOUT', description: 'how long to wait for the guest to power off after SIGTERM before forcing it', defaultText: '60' },
  { flags: '--cache-dir <dir>', key: 'cacheDir', env: 'SNABBVM_CACHE_DIR', description: 'downloaded and unpacked images', defaultText: '/var/cache/snabbvm' },
  { flags: '--run-dir <dir>', key: 'runDir', env: 'SNABBVM_RUN_DIR', description: 'runtime files (sockets, overlay, logs): a new or empty folder, locked while the VM runs', defaultText: '/run/snabbvm/<name>' },
  { flags: '--data-dir <dir>', key: 'dataDir', env: 'SNABBVM_DATA_DIR', description: "where --persist keeps the VM's disks", defaultText: '/var/lib/snabbvm' },
  { flags: '--persist', key: 'persist', env: 'SNABBVM_PERSIST', boolean: true, description: "keep the VM's writes across container restarts (in --data-dir)" },
  { flags: '--sha256 <hex>', key: 'sha256', env: 'SNABBVM_SHA256', description: 'expected SHA-256 of the downloaded image' },
  { flags: '--digest <algo:hex>', key: 'digest', env: 'SNABBVM_DIGEST', description: 'expected digest of the downloaded image, as sha256:HEX or sha512:HEX (Debian publishes SHA512SUMS)' },
  { flags: '--hostname <name>', key: 'hostname', env: 'SNABBVM_HOSTNAME', description: "guest hostname", defaultText: 'the VM name' },
  { flags: '--ssh-key <file|key>', key: 'sshKey', env: 'SNABBVM_SSH_KEY', repeatable: true, envSeparator: '\n', description: "authorized key for the image's default user (repeatable)" },
  { flags: '--password <password>', key: 'password', env: 'SNABBVM_PASSWORD', description: "password for the default user's console login" },
  { flags: '--seed-format <format>', key: 'seedFormat', env: 'SNABBVM_SEED_FORMAT', description: 'nocloud | configdrive', defaultText: 'nocloud' },
  { flags: '--new-instance', key: 'newInstance', env: 'SNABBVM_NEW_INSTANCE', boolean: true, description: 'new cloud-init instance-id, so cloud-init runs again' },
  { flags: '--net <mode>', key: 'net', env: 'SNABBVM_NET', description: 'eth0: nat | bridge | user | none', defaultText: 'nat' },
  { flags: '--ip <addr/len>', key: 'ip', env: 'SNABBVM_IP', description: "static address for the VM's eth0 (bridge or user mode)" },
  { flags: '--gateway <addr>', key: 'gateway', env: 'SNABBVM_GATEWAY', description: 'default gateway with --ip' },
  { flags: '--forward <proto:host:guest>', key: 'forward', env: 'SNABBVM_FORWARD', repeatable: true, envSeparator: ',', description: 'user mode port forward, e.g. tcp:2222:22 (repeatable)' },
  { flags: '--forward-exclude <port>', key: 'forwardExclude', env: 'SNABBVM_FORWARD_EXCLUDE', repeatable: true, envSeparator: ',', description: 'nat mode: ports kept for the container, not forwarded to the VM' },
  { flags: '--force', key: 'force', env: 'SNABBVM_FORCE', boolean: true, description: "use a NIC even if the host's kernel has addresses or routes on it" },
  { flags: '--ports-from-env <resource>', key: 'portsFromEnv', env: 'SNABBVM_PORTS_FROM_ENV', repeatable: true, envSeparator: /[\s,]+/, description: "device plugin resources (intel.com/snabb_82599) whose PCIDEVICE_* addresses become ports after the port arguments, in this order (repeatable; none: ignore PCIDEVICE_*)", defaultText: 'the PCIDEVICE_* variable when there is exactly one' },
  { flags: '--port-options <list>', key: 'portOptions', env: 'SNABBVM_PORT_OPTIONS', description: "options of the device plugin's ports, one entry per port separated by ';' or newlines: vlan=42,ip=10.1.1.1/24;vlan=43" },
  { flags: '--netdev-timeout <seconds>', key: 'netdevTimeout', env: 'SNABBVM_NETDEV_TIMEOUT', description: 'how long to wait for the interfaces of netdev: ports to appear (containerlab adds them after the container starts); 0: they must exist already', defaultText: '300' },
  { flags: '--vnc <display|none>', key: 'vnc', env: 'SNABBVM_VNC', description: 'VNC display number (port 5900+N), or none', defaultText: '1' },
  { flags: '--vnc-listen <addr>', key: 'vncListen', env: 'SNABBVM_VNC_LISTEN', description: 'VNC listen address', defaultText: '0.0.0.0' },
  { flags: '--vnc-password <password>', key: 'vncPassword', env: 'SNABBVM_VNC_PASSWORD', description: 'require this VNC password' },
  { flags: '--web <port|none>', key: 'web', env: 'SNABBVM_WEB', description: 'web console port, or none', defaultText: '8006' },
  { flags: '--web-listen <addr>', key: 'webListen', env: 'SNABBVM_WEB_LISTEN', description: 'web console listen address', defaultText: 'the VNC listen address' },
  { flags: '--web-password <password>', key: 'webPassword', env: 'SNABBVM_WEB_PASSWORD', description: 'require this password for the web console' },
  { flags: '--web-host <name>', key: 'webHost', env: 'SNABBVM_WEB_HOST', repeatable: true, envSeparator: /[\s,]+/, description: 'another name the web console answers to, such as a reverse proxy\'s (repeatable; the environment takes a list)' },
  { flags: '--console <mode>', key: 'console', env: 'SNABBVM_CONSOLE', description: 'auto | tmux | stdio | none (auto: tmux on a terminal, else serial to stdout)', defaultText: 'auto' },
  { flags: '--share <hostdir[:tag]>', key: 'share', env: 'SNABBVM_SHARES', repeatable: true, envSeparator: /[\n,]/, description: "share a host folder with the guest, mounted at /mnt/TAG by cloud-init (repeatable; the environment takes a list)", defaultText: "TAG: the folder's name" },
  { flags: '--share-driver <driver>', key: 'shareDriver', env: 'SNABBVM_SHARE_DRIVER', description: 'auto | virtiofs | 9p (auto: virtiofs when virtiofsd is installed and the launcher runs as root, else 9p)', defaultText: 'auto' },
  { flags: '--pointer <mode>', key: 'pointer', env: 'SNABBVM_POINTER', description: 'tablet | ps2 (tablet: an absolute USB and virtio tablet, so the VNC pointer matches the guest\'s)', defaultText: 'tablet' },
  { flags: '--machine <type>', key: 'machine', env: 'SNABBVM_MACHINE', description: 'QEMU machine type, such as q35, pc or pc-q35-10.0', defaultText: 'q35' },
  { flags: '--cpu-model <model>', key: 'cpuModel', env: 'SNABBVM_CPU_MODEL', description: 'QEMU CPU model, with optional features (Skylake-Client,-hle); host works only under KVM', defaultText: 'host under KVM, max under TCG' },
  { flags: '--qemu-arg <arg>', key: 'qemuArg', env: 'SNABBVM_QEMU_ARGS', repeatable: true, envSeparator: /\s+/, description: 'one more QEMU argument, appended last (repeatable; whitespace-separated in the environment); unsupported territory' },
  { flags: '-q, --quiet', key: 'quiet', env: 'SNABBVM_QUIET', boolean: true, description: 'only warnings and errors' },
  { flags: '--qemu <path>', key: 'qemu', env: 'SNABBVM_QEMU', description: 'QEMU binary (for testing and advanced use)', defaultText: 'qemu-system-x86_64' },
  { flags: '--kvm-device <path>', key: 'kvmDevice', env: 'SNABBVM_KVM_DEVICE', description: 'the KVM device the launcher checks before its KVM probe (tests)', defaultText: '/dev/kvm', hidden: true },
  { flags: '--snabb <path>', key: 'snabb', env: 'SNABBVM_SNABB', description: 'Snabb binary', defaultText: 'snabb', hidden: true },
  { flags: '--sysfs-root <dir>', key: 'sysfsRoot', env: 'SNABBVM_SYSFS_ROOT', description: 'root of sysfs (tests)', defaultText: '/sys', hidden: true },
  { flags: '--test-pci-model <vendor:device>', key: 'testPciModel', env: 'SNABBVM_TEST_PCI_MODEL', repeatable: true, envSeparator: ',', description: "accept this NIC model too, though snabbnfv cannot serve it (tests on emulated NICs: the PCI test host's 8086:10d3)", hidden: true },
  { flags: '--hugepages-dir <dir>', key: 'hugepagesDir', env: 'SNABBVM_HUGEPAGES_DIR', description: 'hugetlbfs mount for guest memory', defaultText: '/dev/hugepages', hidden: true },
];

/** The arguments' environment variables: the image, and the ports separated by spaces or newlines. */
export const positionalEnv = { image: 'SNABBVM_IMAGE', ports: 'SNABBVM_PORTS' } as const;

/**
 * The image and the ports: each from the arguments when given there, else from SNABBVM_IMAGE / SNABBVM_PORTS.
 * An image argument with no port arguments still takes the ports from the environment.
 */
export function positionalsWithEnv(args: string[], env: NodeJS.ProcessEnv): string[] {
  const [imageArg, ...portArgs] = args;
  const image = imageArg ?? (env[positionalEnv.image]?.trim() || undefined);
  const ports = portArgs.length > 0 ? portArgs : (env[positionalEnv.ports] ?? '').split(/\s+/).filter((p) => p !== '');
  return image === undefined ? [] : [image, ...ports];
}

/** Reads the environment into RawOptions. Unparseable booleans are reported, not guessed. */
export function readEnvOptions(env: NodeJS.ProcessEnv, problems: string[]): RawOptions {
  const raw: Record<string, unknown> = {};
  for (const spec of runOptions) {
    const value = env[spec.env];
    if (value === undefined) continue;
    if (spec.boolean) {
      const b = parseBool(value);
      if (b === undefined) problems.push(`${spec.env}=${value} is not a yes/no value; use 1 or 0`);
      else raw[spec.key] = b;
    } else if (spec.repeatable) {
      raw[spec.key] = value
        .split(spec.envSeparator ?? ',')
        .map((s) => s.trim())
        .filter((s) => s !== '');
    } else {
      raw[spec.key] = value;
    }
  }
  return raw as RawOptions;
}

function parseBool(value: string): boolean | undefined {
  const v = value.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off', ''].includes(v)) return false;
  return undefined;
}
