import { createHash } from 'node:crypto';
import { stringify } from 'yaml';
import type { ImageRef, SeedFormat } from '../config/config.js';
import type { GuestNic } from '../network/guest-nic.js';

/** Everything the guest's first boot is told, as data. */
export interface SeedInput {
  format: SeedFormat;
  instanceId: string;
  hostname: string;
  /** public keys for the image's default user, one per entry */
  sshKeys: string[];
  /** a crypt(3) hash for the default user's console password */
  passwordHash?: string;
  /** the user's user-data, exactly as given */
  userData?: Buffer;
  nics: GuestNic[];
  /** host folders the guest mounts at /mnt/TAG on every boot (--share) */
  mounts?: GuestMount[];
}

export interface GuestMount {
  /** a share tag, already validated: letters, digits, '_', '.' and '-', not starting with '.' */
  tag: string;
  fstype: 'virtiofs' | '9p';
}

export interface SeedFile {
  /** relative to the seed image's root */
  path: string;
  content: string | Buffer;
}

/** The volume label cloud-init looks for. */
export const SEED_LABEL: Record<SeedFormat, string> = { nocloud: 'cidata', configdrive: 'config-2' };

/**
 * The instance-id: the same for the same VM name and image (path or URL), so a persisted disk does not run
 * cloud-init's per-instance steps again; --new-instance passes a random salt for a fresh one. UUID-shaped, which
 * suits both NoCloud and config-drive. Pure.
 */
export function buildInstanceId(name: string, image: ImageRef, salt = ''): string {
  const what = image.kind === 'file' ? image.path : image.url;
  const h = createHash('sha256').update(`snabbvm\0${name}\0${what}\0${salt}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 3) | 8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** The keys in --ssh-key texts: one per non-blank, non-comment line. */
export function splitSshKeys(texts: string[]): string[] {
  const keys = texts.flatMap((t) => t.split(/\r?\n/)).map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  return [...new Set(keys)];
}

/**
 * The seed's files. How --ssh-key and --password reach the guest without touching the user's user-data:
 * - keys go in the meta-data's public keys, the datasource's own channel for key pairs: cloud-init adds them to the
 *   default user's authorized_keys whatever the user-data says (only `allow_public_ssh_keys: false` turns that off);
 * - the password goes in vendor-data, which cloud-init merges under the user-data, so a password the user-data sets
 *   itself still wins.
 * Pure.
 */
export function renderSeedFiles(input: SeedInput): SeedFile[] {
  const vendorData = renderVendorData(input.passwordHash, input.mounts ?? []);
  if (input.format === 'configdrive') {
    const dir = 'openstack/latest';
    const files: SeedFile[] = [{ path: `${dir}/meta_data.json`, content: json(renderConfigDriveMetaData(input)) }];
    if (input.userData !== undefined) files.push({ path: `${dir}/user_data`, content: input.userData });
    if (vendorData !== undefined) files.push({ path: `${dir}/vendor_data.json`, content: json({ 'cloud-init': vendorData }) });
    if (input.nics.length > 0) files.push({ path: `${dir}/network_data.json`, content: json(renderNetworkData(input.nics)) });
    return files;
  }
  const metaData: Record<string, unknown> = { 'instance-id': input.instanceId, 'local-hostname': input.hostname };
  if (input.sshKeys.length > 0) metaData['public-keys'] = input.sshKeys;
  const files: SeedFile[] = [
    { path: 'meta-data', content: stringify(metaData, { lineWidth: 0 }) },
    // NoCloud needs a user-data file; an empty cloud-config does nothing.
    { path: 'user-data', content: input.userData ?? '#cloud-config\n' },
  ];
  if (vendorData !== undefined) files.push({ path: 'vendor-data', content: vendorData });
  if (input.nics.length > 0) files.push({ path: 'network-config', content: stringify(renderNetworkConfig(input.nics), { lineWidth: 0 }) });
  return files;
}

/**
 * vendor-data: what the launcher adds beside the user's user-data. The password as cloud-config, which cloud-init
 * merges under the user-data (so the user-data's own settings win); the shared folders' mounts as a boothook,
 * which no user-data key overrides and which runs on every boot, before the user-data's runcmd. Both together go
 * in a MIME multipart. Pure.
 */
function renderVendorData(passwordHash: string | undefined, mounts: GuestMount[]): string | undefined {
  const parts: { type: string; text: string }[] = [];
  if (passwordHash !== undefined) {
    const text = [
      '#cloud-config',
      "# snabbvm --password: the default user's console password. The user-data's own settings win over these.",
      stringify({ password: passwordHash, chpasswd: { expire: false } }, { lineWidth: 0 }),
    ].join('\n');
    parts.push({ type: 'text/cloud-config', text });
  }
  if (mounts.length > 0) parts.push({ type: 'text/cloud-boothook', text: renderMountBoothook(mounts) });
  if (parts.length <= 1) return parts[0]?.text;
  const boundary = '==snabbvm-vendor-data==';
  return [
    `Content-Type: multipart/mixed; boundary="${boundary}"`,
    'MIME-Version: 1.0',
    '',
    ...parts.flatMap((p) => [`--${boundary}`, `Content-Type: ${p.type}; charset="utf-8"`, '', p.text]),
    `--${boundary}--`,
    '',
  ].join('\n');
}

/** The mount options of each filesystem a share can be. */
const MOUNT_OPTIONS: Record<GuestMount['fstype'], string> = {
  virtiofs: 'defaults',
  '9p': 'trans=virtio,version=9p2000.L,msize=524288',
};

/**
 * A boothook that mounts each share at /mnt/TAG. cloud-init keeps a boothook's output to itself, so it says what it
 * did on the console too; a mount that fails makes it fail, which cloud-init logs and `cloud-init status` shows. Pure.
 */
export function renderMountBoothook(mounts: GuestMount[]): string {
  return [
    '#cloud-boothook',
    '#!/bin/sh',
    "# snabbvm --share: mount the host's folders at /mnt/TAG, on every boot",
    'say() { echo "snabbvm: $*" >&2; [ -w /dev/console ] && echo "snabbvm: $*" >/dev/console; return 0; }',
    'failed=0',
    'mount_share() { # tag fstype options',
    '  if mountpoint -q "/mnt/$1" || { mkdir -p "/mnt/$1" && mount -t "$2" -o "$3" "$1" "/mnt/$1"; }; then',
    '    say "shared folder $1 mounted at /mnt/$1 ($2)"',
    '  else',
    '    say "could not mount the shared folder $1 at /mnt/$1 ($2): does the guest kernel have $2?"; failed=1',
    '  fi',
    '}',
    ...mounts.map((m) => `mount_share ${m.tag} ${m.fstype} ${MOUNT_OPTIONS[m.fstype]}`),
    'exit $failed',
    '',
  ].join('\n');
}

function renderConfigDriveMetaData(input: SeedInput): Record<string, unknown> {
  const md: Record<string, unknown> = { uuid: input.instanceId, hostname: input.hostname, name: input.hostname };
  if (input.sshKeys.length > 0) md.public_keys = Object.fromEntries(input.sshKeys.map((k, i) => [`key-${i}`, k]));
  return md;
}

/**
 * cloud-init network-config version 2 (netplan syntax): each NIC matched by its MAC and given its name, so the
 * guest's own naming doesn't matter. The gateway is `gateway4`/`gateway6`, not a `routes:` entry: cloud-init's
 * ifupdown renderer (Debian) turns routes into `route add`, which needs net-tools, but a gateway into `gateway`. Pure.
 */
export function renderNetworkConfig(nics: GuestNic[]): Record<string, unknown> {
  const ethernets: Record<string, unknown> = {};
  for (const nic of nics) {
    const eth: Record<string, unknown> = { match: { macaddress: nic.mac.toLowerCase() }, 'set-name': nic.name };
    eth.dhcp4 = nic.dhcp;
    if (nic.addresses.length > 0) eth.addresses = [...nic.addresses];
    if (nic.gateway !== undefined) eth[nic.gateway.includes(':') ? 'gateway6' : 'gateway4'] = nic.gateway;
    if (nic.nameservers?.length) eth.nameservers = { addresses: [...nic.nameservers] };
    if (nic.mtu !== undefined) eth.mtu = nic.mtu;
    ethernets[nic.name] = eth;
  }
  return { version: 2, ethernets };
}

/** The same NICs in OpenStack's network_data.json, which is what cloud-init reads from a config drive. Pure. */
export function renderNetworkData(nics: GuestNic[]): Record<string, unknown> {
  const links = nics.map((nic) => ({ id: nic.name, name: nic.name, type: 'phy', ethernet_mac_address: nic.mac.toLowerCase(), ...(nic.mtu !== undefined ? { mtu: nic.mtu } : {}) }));
  const networks: Record<string, unknown>[] = [];
  for (const nic of nics) {
    if (nic.dhcp) networks.push({ id: `${nic.name}-dhcp4`, link: nic.name, type: 'ipv4_dhcp' });
    nic.addresses.forEach((cidr, i) => {
      const [address, prefix] = cidr.split('/') as [string, string];
      const v6 = address.includes(':');
      const net: Record<string, unknown> = { id: `${nic.name}-${i}`, link: nic.name, type: v6 ? 'ipv6' : 'ipv4' };
      if (v6) net.ip_address = cidr;
      else Object.assign(net, { ip_address: address, netmask: ipv4Netmask(Number(prefix)) });
      const gatewayHere = nic.gateway !== undefined && nic.gateway.includes(':') === v6 && nic.addresses.findIndex((a) => a.includes(':') === v6) === i;
      if (gatewayHere) net.gateway = nic.gateway;
      if (nic.nameservers?.length) net.dns_nameservers = [...nic.nameservers];
      networks.push(net);
    });
  }
  return { links, networks, services: [] };
}

function ipv4Netmask(prefix: number): string {
  const bits = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return [24, 16, 8, 0].map((s) => (bits >>> s) & 255).join('.');
}

const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;
