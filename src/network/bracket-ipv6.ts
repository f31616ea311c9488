/** An address as it goes before `:port` (or QEMU's `:display`): an IPv6 address in brackets, others as they are. */
export function bracketIpv6(address: string): string {
  return address.includes(':') && !address.startsWith('[') ? `[${address}]` : address;
}
