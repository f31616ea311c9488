import { accessSync, constants, readFileSync } from 'node:fs';
import path from 'node:path';
import type { NetMode } from '../config/config.js';
import { hostError } from '../errors.js';

const CAP_NET_ADMIN = 12;

/** The effective capability set from /proc/self/status text. */
export function parseCapEff(status: string): bigint {
  const hex = status.match(/^CapEff:\s*([0-9a-fA-F]+)$/m)?.[1];
  return hex === undefined ? 0n : BigInt(`0x${hex}`);
}

export function hasCapability(capEff: bigint, cap: number): boolean {
  return (capEff & (1n << BigInt(cap))) !== 0n;
}

/** The programs each mode runs, with the Debian package that has them. */
const PROGRAMS: Record<NetMode, [program: string, pkg: string][]> = {
  nat: [['ip', 'iproute2'], ['nft', 'nftables'], ['dnsmasq', 'dnsmasq-base']],
  bridge: [['ip', 'iproute2']],
  user: [],
  none: [],
};

/**
 * Why `mode` cannot run here, or undefined. Pure: the caller reads the facts.
 * nat and bridge make a bridge and a tap, which needs CAP_NET_ADMIN and /dev/net/tun.
 */
export function findNetworkHostProblem(
  mode: NetMode,
  facts: { capEff: bigint; tunAvailable: boolean; missingPrograms: string[] },
): string | undefined {
  if (mode === 'user' || mode === 'none') return undefined;
  if (!hasCapability(facts.capEff, CAP_NET_ADMIN)) {
    return `--net ${mode} needs CAP_NET_ADMIN to make a bridge and a tap, and this process lacks it; run the container with --privileged, or use --net user (no privileges needed)`;
  }
  if (!facts.tunAvailable) {
    return `--net ${mode} needs /dev/net/tun for the VM's tap, and it is missing; run the container with --privileged (or --device /dev/net/tun), or use --net user`;
  }
  if (facts.missingPrograms.length > 0) {
    return `--net ${mode} needs ${facts.missingPrograms.join(', ')}; install them (apt-get install ${facts.missingPrograms.map((p) => PROGRAMS[mode].find(([prog]) => prog === p)?.[1]).join(' ')}), or use --net user`;
  }
  return undefined;
}

/** Throws a host-not-ready error (exit 4) when the mode can't run here. Touches nothing. */
export function checkNetworkHost(mode: NetMode): void {
  if (mode === 'user' || mode === 'none') return;
  let status = '';
  try {
    status = readFileSync('/proc/self/status', 'utf8');
  } catch {}
  let tunAvailable = true;
  try {
    accessSync('/dev/net/tun', constants.R_OK | constants.W_OK);
  } catch {
    tunAvailable = false;
  }
  const missingPrograms = PROGRAMS[mode].map(([program]) => program).filter((p) => !onPath(p));
  const problem = findNetworkHostProblem(mode, { capEff: parseCapEff(status), tunAvailable, missingPrograms });
  if (problem !== undefined) throw hostError(problem);
}

/** Whether `program` is an executable on PATH. */
export function onPath(program: string): boolean {
  return (process.env.PATH ?? '').split(':').some((dir) => {
    try {
      accessSync(path.join(dir, program), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}
