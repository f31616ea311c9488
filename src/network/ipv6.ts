import { createHash } from 'node:crypto';

/** IPv6 addresses of nat mode's inside link. Pure. */

/**
 * A unique local /64 (RFC 4193: fd00::/8 and a 40-bit global ID) for VM `name`: the ID is a hash of the name, so the
 * prefix, and with the stable MAC the VM's address, stay the same across restarts and differ between VMs.
 * Returned as its first four groups, such as "fd12:3456:789a:0".
 */
export function ulaPrefix64(name: string): string {
  const h = createHash('sha256').update(`snabbvm-ula:${name}`).digest();
  const bytes = [0xfd, h[0]!, h[1]!, h[2]!, h[3]!, h[4]!, 0, 0];
  return groups(bytes).join(':');
}

/**
 * The address a guest forms by SLAAC with the modified EUI-64 interface ID (RFC 4291): the MAC with ff:fe in the
 * middle and the universal/local bit flipped. What Linux does by default (addr_gen_mode 0), as do ifupdown and
 * systemd-networkd; a guest set to stable-privacy addresses gets another one.
 */
export function eui64Address(prefix64: string, mac: string): string {
  const m = mac.split(':').map((b) => parseInt(b, 16));
  const id = [m[0]! ^ 0x02, m[1]!, m[2]!, 0xff, 0xfe, m[3]!, m[4]!, m[5]!];
  return compress(`${prefix64}:${groups(id).join(':')}`);
}

/** `host` (a small number) in the /64: "fd12:3456:789a::2". */
export function hostInPrefix(prefix64: string, host: number): string {
  return compress(`${prefix64}:0:0:0:${host.toString(16)}`);
}

function groups(bytes: number[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < bytes.length; i += 2) out.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return out;
}

/** Eight groups in their shortest form (RFC 5952): the longest run of two or more zero groups becomes "::". */
function compress(full: string): string {
  const parts = full.split(':').map((g) => parseInt(g, 16).toString(16));
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < parts.length; ) {
    if (parts[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < parts.length && parts[j] === '0') j++;
    if (j - i > bestLength) [bestStart, bestLength] = [i, j - i];
    i = j;
  }
  if (bestStart < 0) return parts.join(':');
  return `${parts.slice(0, bestStart).join(':')}::${parts.slice(bestStart + bestLength).join(':')}`;
}
