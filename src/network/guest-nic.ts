/** How the guest should configure one of its NICs; cloud-init's network-config is rendered from these. */
export interface GuestNic {
  /** eth0, eth1, ...: the name in the guest, matched by MAC so the guest's own naming doesn't matter */
  name: string;
  mac: string;
  /** DHCP for IPv4 */
  dhcp: boolean;
  /** static addresses with prefix length, such as 10.1.1.1/24 */
  addresses: string[];
  gateway?: string;
  nameservers?: string[];
  /** when not 1500: the container's uplink is narrower (an overlay network), so the guest must be too */
  mtu?: number;
}
