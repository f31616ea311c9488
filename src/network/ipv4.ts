/** IPv4 arithmetic for subnet choice and address checks. Pure. */

export interface Ipv4Net {
  /** the network address as a 32-bit number */
  base: number;
  prefix: number;
}

export function parseIpv4(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) return undefined;
  return parts.reduce((n, p) => n * 256 + Number(p), 0);
}

export function formatIpv4(n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');
}

/** "10.0.2.15/24" → its network; a bare address counts as a /32. */
export function parseCidr(text: string): Ipv4Net | undefined {
  const [addr, len] = text.split('/');
  const ip = parseIpv4(addr ?? '');
  const prefix = len === undefined ? 32 : Number(len);
  if (ip === undefined || !Number.isInteger(prefix) || prefix < 0 || prefix > 32) return undefined;
  return { base: ip - (ip % 2 ** (32 - prefix)), prefix };
}

export function formatCidr(net: Ipv4Net): string {
  return `${formatIpv4(net.base)}/${net.prefix}`;
}

/** The nth address of a network (0 is the network address itself). */
export function hostAddress(net: Ipv4Net, n: number): string {
  return formatIpv4(net.base + n);
}

export function overlaps(a: Ipv4Net, b: Ipv4Net): boolean {
  const aEnd = a.base + 2 ** (32 - a.prefix);
  const bEnd = b.base + 2 ** (32 - b.prefix);
  return a.base < bEnd && b.base < aEnd;
}

export function contains(net: Ipv4Net, ip: string): boolean {
  const n = parseIpv4(ip);
  return n !== undefined && overlaps(net, { base: n, prefix: 32 });
}

export function netmask(prefix: number): string {
  return formatIpv4(2 ** 32 - 2 ** (32 - prefix));
}
