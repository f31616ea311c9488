import { accessSync, constants, existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { isIP, isIPv4 } from 'node:net';
import path from 'node:path';
import { inputError, ProblemsError, usageError, type UserError } from '../errors.js';
import type { AccelMode, BootMode, ConsoleMode, DiskBus, ExtraDiskSpec, ImageRef, NetMode, PointerMode, SeedFormat, Share, ShareDriverMode, VmConfig } from './config.js';
import type { RawOptions } from './options.js';
import { parseSize } from './size.js';
import { validatePortSpecs } from '../snabb/port-spec.js';
import { planDevicePluginPorts } from '../snabb/device-plugin-ports.js';
import { checkUserDataFile } from '../cloudinit/validate-user-data.js';
import { isKvmOnlyCpuModel, MACHINE_TYPE } from '../qemu/build-qemu-argv.js';

export interface ConfigInput {
  /** options from the command line, already merged over the environment (the flag wins) */
  raw: RawOptions;
  /** the image, then the ports */
  positionals: string[];
  env: NodeJS.ProcessEnv;
  /** relative file names resolve against this: /u when it exists, else the current folder */
  baseDir: string;
}

export const DEFAULT_NAME = 'snabbvm';
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const HOSTNAME_RE = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const LISTEN_HOST_RE = /^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/;

/** 10.0.0.5/24: an IPv4 address and a prefix length of 0 to 32 */
function isIpv4WithPrefix(text: string): boolean {
  const m = /^([0-9.]+)\/(\d{1,2})$/.exec(text);
  return m !== null && isIPv4(m[1]!) && Number(m[2]) <= 32;
}

/**
 * Disks per bus, the boot disk included: the q35 AHCI controller has 6 ports (one kept for an ISO's CD-ROM), the
 * IDE controller 2 buses of 2 (one kept too); virtio-blk takes a PCI slot each.
 */
const MAX_DISKS: Record<DiskBus, number> = { virtio: 16, scsi: 16, sata: 5, ide: 3 };

const isPort = (digits: string) => Number(digits) >= 1 && Number(digits) <= 65535;

/** The folder relative paths resolve against: the container's /u mount when there is one. */
export function defaultBaseDir(): string {
  return existsSync('/u') ? '/u' : process.cwd();
}

/**
 * Fills in defaults and validates, collecting every problem before it reports.
 * Throws ProblemsError; its exit code is the most basic category among the problems.
 */
export function loadConfig({ raw, positionals, env, baseDir }: ConfigInput): VmConfig {
  const problems: UserError[] = [];
  const usage = (msg: string) => problems.push(usageError(msg));
  const input = (msg: string) => problems.push(inputError(msg));
  const resolve = (p: string) => path.resolve(baseDir, p);

  const oneOf = <T extends string>(what: string, value: string | undefined, allowed: readonly T[], dflt: T): T => {
    if (value === undefined) return dflt;
    if ((allowed as readonly string[]).includes(value)) return value as T;
    usage(`${what} '${value}' is not valid; use one of: ${allowed.join(', ')}`);
    return dflt;
  };
  const integer = (what: string, value: string | undefined, dflt: number, min: number, max: number): number => {
    if (value === undefined) return dflt;
    const n = /^\s*\d+\s*$/.test(value) ? Number(value) : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      usage(`${what} '${value}' is not valid; give a whole number from ${min} to ${max}`);
      return dflt;
    }
    return n;
  };
  const readableFile = (what: string, given: string): string => {
    const p = resolve(given);
    try {
      if (!statSync(p).isFile()) {
        input(`${what} ${p} is not a file`);
        return p;
      }
      accessSync(p, constants.R_OK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') input(`${what} ${p} does not exist; put it in the folder mounted at /u (-v $PWD:/u)`);
      else input(`${what} ${p} cannot be read (${code}); check its permissions`);
    }
    return p;
  };

  // Positionals: the image, then the ports; the device plugin's ports (PCIDEVICE_*) follow them.
  const [imageArg, ...portArgs] = positionals;
  const fromDevicePlugin = planDevicePluginPorts(env, raw.portsFromEnv, raw.portOptions);
  problems.push(...fromDevicePlugin.problems);
  const ports = [...portArgs, ...fromDevicePlugin.ports];
  problems.push(...validatePortSpecs(ports));
  let image: ImageRef = { kind: 'file', path: '' };
  if (imageArg === undefined || imageArg === '') {
    usage("no image given; usage: snabbvm [options] <image file in /u, or URL> [port ...], or set SNABBVM_IMAGE");
  } else if (/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(imageArg)) {
    image = parseImageUrl(imageArg, input);
  } else {
    image = { kind: 'file', path: readableFile('image', imageArg) };
  }

  const name = raw.name ?? env.NAME ?? DEFAULT_NAME;
  if (!NAME_RE.test(name)) usage(`name '${name}' is not valid; use letters, digits, '.', '_' and '-', at most 63`);

  const cpus = integer('--cpus', raw.cpus, 1, 1, 255);

  let memoryMiB = 1024;
  if (raw.memory !== undefined) {
    const bytes = parseSize(raw.memory, 'M');
    if (bytes === undefined || bytes < 64 * 2 ** 20 || bytes % 2 ** 20 !== 0) {
      usage(`--memory '${raw.memory}' is not valid; give MB (2048) or a size with a unit (2G), at least 64M`);
    } else {
      memoryMiB = bytes / 2 ** 20;
    }
  }

  let diskSizeBytes: number | undefined;
  if (raw.diskSize !== undefined) {
    diskSizeBytes = parseSize(raw.diskSize);
    if (diskSizeBytes === undefined || diskSizeBytes < 2 ** 20) {
      usage(`--disk-size '${raw.diskSize}' is not valid; give a size with a unit, such as 20G`);
      diskSizeBytes = undefined;
    }
  }

  const diskBus = oneOf<DiskBus>('--disk-bus', raw.diskBus, ['virtio', 'scsi', 'sata', 'ide'], 'virtio');
  const disks = (raw.disk ?? []).map((given): ExtraDiskSpec => {
    // a size has a unit (10G); anything else is a file, even a bare number
    if (/^\s*\d+(\.\d+)?\s*[KMGT]/i.test(given)) {
      const sizeBytes = parseSize(given);
      if (sizeBytes === undefined || sizeBytes < 2 ** 20) usage(`--disk '${given}' is not valid; give a size with a unit, such as 10G, or a disk image file`);
      return { kind: 'blank', sizeBytes: sizeBytes ?? 0 };
    }
    return { kind: 'file', path: readableFile('--disk', given) };
  });
  const maxDisks = MAX_DISKS[diskBus];
  if (1 + disks.length > maxDisks) usage(`--disk-bus ${diskBus} takes at most ${maxDisks} disks with the boot disk (and a port kept for an ISO's CD-ROM); give fewer --disk or another --disk-bus`);

  let sha256: string | undefined;
  let sha512: string | undefined;
  if (raw.sha256 !== undefined && raw.digest !== undefined) usage('give --sha256 or --digest, not both');
  // --digest ALGO:HEX (sha256 or sha512, as Debian's SHA512SUMS and Lima's templates give them); a bare HEX is SHA-256
  const [, algorithm = 'sha256', hex = ''] = raw.sha256 !== undefined ? [, 'sha256', raw.sha256] : (/^(?:(sha256|sha512):)?(.*)$/i.exec(raw.digest ?? '') ?? []);
  if (raw.sha256 !== undefined || raw.digest !== undefined) {
    if (algorithm.toLowerCase() === 'sha512' && /^[0-9a-fA-F]{128}$/.test(hex)) sha512 = hex.toLowerCase();
    else if (algorithm.toLowerCase() === 'sha256' && /^[0-9a-fA-F]{64}$/.test(hex)) sha256 = hex.toLowerCase();
    else usage(`digest '${raw.sha256 ?? raw.digest}' is not valid; give --sha256 HEX (64 hex digits), --digest sha256:HEX or --digest sha512:HEX (128 hex digits)`);
    if (image.kind !== 'url' && imageArg !== undefined) usage('--sha256/--digest only apply to an image given by URL');
  }

  // Without --hostname, the VM name with what a hostname can't hold turned into '-'.
  const hostname = raw.hostname ?? (name.replace(/[^A-Za-z0-9-]/g, '-').replace(/^-+|-+$/g, '') || DEFAULT_NAME);
  if (!HOSTNAME_RE.test(hostname)) usage(`--hostname '${hostname}' is not valid; use letters, digits and '-', at most 63`);

  const sshKeys = (raw.sshKey ?? []).map((k) => readSshKey(k, resolve, input));

  const net = oneOf<NetMode>('--net', raw.net, ['nat', 'bridge', 'user', 'none'], 'nat');
  if (raw.ip !== undefined && !isIpv4WithPrefix(raw.ip)) usage(`--ip '${raw.ip}' is not valid; give an address with a prefix length, such as 172.17.0.50/16`);
  if (raw.gateway !== undefined && !isIPv4(raw.gateway)) usage(`--gateway '${raw.gateway}' is not valid; give an IPv4 address`);
  if (raw.gateway !== undefined && raw.ip === undefined) usage('--gateway needs --ip');
  const forwards = raw.forward ?? [];
  for (const f of forwards) {
    const m = /^(tcp|udp):(\d{1,5}):(\d{1,5})$/.exec(f);
    if (!m || !isPort(m[2]!) || !isPort(m[3]!)) usage(`--forward '${f}' is not valid; use proto:hostport:guestport with ports from 1 to 65535, such as tcp:2222:22`);
  }
  const forwardExclude: number[] = [];
  for (const p of raw.forwardExclude ?? []) forwardExclude.push(integer('--forward-exclude', p, 0, 1, 65535));

  let vncDisplay: number | undefined = 1;
  if (raw.vnc !== undefined) vncDisplay = raw.vnc === 'none' ? undefined : integer('--vnc', raw.vnc, 1, 0, 99);
  if (raw.vncPassword !== undefined && (raw.vncPassword.length < 1 || raw.vncPassword.length > 8)) usage('--vnc-password must be 1 to 8 characters: VNC authentication uses no more than 8');
  for (const [flag, value] of [['--vnc-listen', raw.vncListen], ['--web-listen', raw.webListen]] as const) {
    // it goes into QEMU's -vnc option list: only an address or a host name, never ',' or '=' (more options)
    if (value !== undefined && !isIP(value.replace(/^\[(.*)\]$/, '$1')) && !LISTEN_HOST_RE.test(value)) usage(`${flag} '${value}' is not valid; give an IP address (0.0.0.0, 127.0.0.1, ::) or a host name`);
  }
  let webPort: number | undefined = 8006;
  if (raw.web !== undefined) webPort = raw.web === 'none' ? undefined : integer('--web', raw.web, 8006, 1, 65535);
  if (raw.webPassword !== undefined && raw.webPassword.length === 0) usage('--web-password must not be empty; leave it out to run the web console without a password');
  const webHosts = (raw.webHost ?? []).map((h) => h.toLowerCase());
  for (const h of webHosts) {
    if (!/^[a-z0-9]([a-z0-9-]{0,62}\.?)*$/.test(h) || h.length > 253) usage(`--web-host '${h}' is not a host name; give the name as the browser's address bar shows it, without scheme or port, such as vm1.example.com`);
  }

  const accel = oneOf<AccelMode>('--accel', raw.accel, ['auto', 'kvm', 'tcg'], 'auto');
  const shares = parseShares(raw.share ?? [], resolve, usage, input);
  const machine = raw.machine ?? MACHINE_TYPE;
  // each goes into one QEMU option list: a name, never ',' (more options) for the machine
  if (!MACHINE_RE.test(machine)) usage(`--machine '${machine}' is not valid; give a QEMU machine type such as q35, pc or pc-q35-10.0 (qemu-system-x86_64 -machine help lists them)`);
  // SATA disks sit on q35's built-in AHCI controller; pc (i440FX) has none
  if (diskBus === 'sata' && !/q35/.test(machine)) usage(`--disk-bus sata needs a q35 machine (its AHCI controller), not --machine ${machine}; use --disk-bus ide with this machine`);
  if (raw.cpuModel !== undefined && !CPU_MODEL_RE.test(raw.cpuModel)) usage(`--cpu-model '${raw.cpuModel}' is not valid; give a QEMU CPU model such as max or Skylake-Client, optionally with features (Skylake-Client,-hle)`);
  if (raw.cpuModel !== undefined && isKvmOnlyCpuModel(raw.cpuModel) && accel === 'tcg') {
    usage(`--cpu-model ${raw.cpuModel} needs KVM and cannot run under --accel tcg; use max (the default under TCG) or a named model such as Skylake-Client`);
  }

  const config: VmConfig = {
    name,
    image,
    ports,
    cpus,
    memoryMiB,
    accel,
    boot: oneOf<BootMode>('--boot', raw.boot, ['auto', 'bios', 'uefi'], 'auto'),
    disks,
    diskBus,
    stopTimeoutSec: integer('--stop-timeout', raw.stopTimeout, 60, 0, 86400),
    runDir: path.resolve(raw.runDir ?? path.join('/run/snabbvm', name)),
    cacheDir: path.resolve(raw.cacheDir ?? '/var/cache/snabbvm'),
    dataDir: path.resolve(raw.dataDir ?? '/var/lib/snabbvm'),
    persist: raw.persist ?? false,
    hostname,
    sshKeys,
    seedFormat: oneOf<SeedFormat>('--seed-format', raw.seedFormat, ['nocloud', 'configdrive'], 'nocloud'),
    newInstance: raw.newInstance ?? false,
    net,
    forwards,
    forwardExclude,
    force: raw.force ?? false,
    netdevTimeoutSec: integer('--netdev-timeout', raw.netdevTimeout, 300, 0, 86400),
    vncListen: raw.vncListen ?? '0.0.0.0',
    webListen: raw.webListen ?? raw.vncListen ?? '0.0.0.0',
    webHosts,
    console: oneOf<ConsoleMode>('--console', raw.console, ['auto', 'tmux', 'stdio', 'none'], 'auto'),
    quiet: raw.quiet ?? false,
    qemuBinary: raw.qemu ?? 'qemu-system-x86_64',
    kvmDevice: raw.kvmDevice ?? '/dev/kvm',
    snabbBinary: raw.snabb ?? 'snabb',
    sysfsRoot: raw.sysfsRoot ?? '/sys',
    hugepagesDir: raw.hugepagesDir ?? '/dev/hugepages',
    shares,
    shareDriver: oneOf<ShareDriverMode>('--share-driver', raw.shareDriver, ['auto', 'virtiofs', '9p'], 'auto'),
    pointer: oneOf<PointerMode>('--pointer', raw.pointer, ['tablet', 'ps2'], 'tablet'),
    machine,
    qemuArgs: raw.qemuArg ?? [],
    testPciModels: (raw.testPciModel ?? []).map((m) => m.toLowerCase()),
  };
  if (raw.cpuModel !== undefined) config.cpuModel = raw.cpuModel;
  for (const m of config.testPciModels) {
    if (!/^[0-9a-f]{4}:[0-9a-f]{4}$/.test(m)) input(`--test-pci-model ${m} is not a vendor:device ID; write it as lspci -nn shows it, e.g. 8086:10d3`);
  }
  if (raw.userData !== undefined) {
    config.userDataPath = readableFile('user-data', raw.userData);
    const problem = checkUserDataFile(config.userDataPath);
    if (problem !== undefined) input(problem);
  }
  if (diskSizeBytes !== undefined) config.diskSizeBytes = diskSizeBytes;
  if (sha256 !== undefined) config.sha256 = sha256;
  if (sha512 !== undefined) config.sha512 = sha512;
  if (raw.password !== undefined) config.password = raw.password;
  if (raw.ip !== undefined) config.ip = raw.ip;
  if (raw.gateway !== undefined) config.gateway = raw.gateway;
  if (vncDisplay !== undefined) config.vncDisplay = vncDisplay;
  if (raw.vncPassword !== undefined) config.vncPassword = raw.vncPassword;
  if (webPort !== undefined) config.webPort = webPort;
  if (raw.webPassword !== undefined) config.webPassword = raw.webPassword;

  if (problems.length > 0) throw new ProblemsError(problems);
  return config;
}

const MACHINE_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const CPU_MODEL_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}(,[A-Za-z0-9_.=+-]{1,64}){0,64}$/;
/** A tag is what the guest mounts by (virtio-fs allows 36 bytes) and the folder under /mnt: no '/', no leading '.' */
const SHARE_TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,35}$/;

/** The default tag of a shared folder: its name with what a tag can't hold turned into '_', at most 36 characters. */
export function defaultShareTag(hostDir: string): string {
  const tag = path.basename(hostDir).replace(/[^A-Za-z0-9_.-]/g, '_').replace(/^[.-]+/, '').slice(0, 36);
  return tag === '' ? 'share' : tag;
}

/**
 * --share HOSTDIR[:TAG]: the part after the last ':' is the tag when it holds no '/' (so /srv/a:b/c is a folder).
 * The folder must exist; its real path (symlinks resolved) is what QEMU or virtiofsd is given.
 */
function parseShares(specs: string[], resolve: (p: string) => string, usage: (msg: string) => void, input: (msg: string) => void): Share[] {
  const shares: Share[] = [];
  for (const spec of specs) {
    const colon = spec.lastIndexOf(':');
    const hasTag = colon > 0 && !spec.slice(colon + 1).includes('/');
    const given = hasTag ? spec.slice(0, colon) : spec;
    const tag = hasTag ? spec.slice(colon + 1) : defaultShareTag(resolve(given));
    if (!SHARE_TAG_RE.test(tag)) {
      usage(`--share '${spec}' is not valid: give HOSTDIR or HOSTDIR:TAG, a TAG of letters, digits, '_', '.' and '-' (at most 36, not starting with '.' or '-')`);
      continue;
    }
    let hostDir = resolve(given);
    try {
      if (!statSync(hostDir).isDirectory()) {
        input(`--share ${hostDir} is not a folder; share a folder (put files in it)`);
        continue;
      }
      hostDir = realpathSync(hostDir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      input(code === 'ENOENT' ? `--share ${hostDir} does not exist; create it, or mount it into the container (-v /host/dir:${hostDir})` : `--share ${hostDir} cannot be read (${code}); check its permissions`);
      continue;
    }
    if (shares.some((s) => s.tag === tag)) {
      usage(`--share '${spec}': tag '${tag}' is already used by another --share; give each its own tag (HOSTDIR:TAG)`);
      continue;
    }
    shares.push({ hostDir, tag });
  }
  return shares;
}

function parseImageUrl(text: string, input: (msg: string) => void): ImageRef {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    input(`image URL '${text}' is malformed; give a full http:// or https:// address`);
    return { kind: 'url', url: text };
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    input(`image URL scheme '${url.protocol.slice(0, -1)}' is not supported; use http:// or https://, or put the file in /u`);
  } else if (url.hostname === '') {
    input(`image URL '${text}' has no host; give a full http:// or https:// address`);
  }
  return { kind: 'url', url: url.href };
}

/** An --ssh-key is a public key itself, or a file that holds one or more. */
function readSshKey(given: string, resolve: (p: string) => string, input: (msg: string) => void): string {
  if (/^(ssh-|ecdsa-|sk-)/.test(given.trim())) return given.trim();
  const p = resolve(given);
  try {
    const text = readFileSync(p, 'utf8').trim();
    if (!/^(ssh-|ecdsa-|sk-)/m.test(text)) input(`--ssh-key ${p} holds no public key; give a .pub file or the key itself`);
    return text;
  } catch (err) {
    input(`--ssh-key '${given}' is neither a public key nor a readable file (${(err as NodeJS.ErrnoException).code})`);
    return '';
  }
}
