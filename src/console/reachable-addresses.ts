import { log } from '../log.js';
import { probeContainerNetwork, uplinkOf } from '../network/container-network.js';
import { bracketIpv6 } from '../network/bracket-ipv6.js';

/**
 * Where a browser or VNC viewer reaches a server listening on `listen`, as `host:port` strings: for the wildcard
 * (0.0.0.0, or :: for both families) the container's own addresses, since 0.0.0.0 is no address to open; any other
 * address as it is. With no own address known, the listen address itself.
 */
export function reachableHostPorts(listen: string, port: number, ownAddresses: { family: 'inet' | 'inet6'; local: string }[]): string[] {
  const bare = listen.replace(/^\[(.*)\]$/, '$1');
  const families = bare === '0.0.0.0' ? ['inet'] : bare === '::' ? ['inet', 'inet6'] : [];
  const hosts = ownAddresses.filter((a) => families.includes(a.family)).map((a) => a.local);
  return (hosts.length > 0 ? hosts : [bare]).map((h) => `${bracketIpv6(h)}:${port}`);
}

/** The container's global addresses on its uplink (the interface of its default route): what others reach it at. */
export async function containerAddresses(): Promise<{ family: 'inet' | 'inet6'; local: string }[]> {
  try {
    const uplink = uplinkOf(await probeContainerNetwork());
    return (uplink?.addresses ?? []).filter((a) => a.scope === 'global');
  } catch (err) {
    log.info(`the container's addresses are unknown (${(err as Error).message}); the consoles are given by their listen address`);
    return [];
  }
}

/** `web console on http://172.17.0.2:8006/`, with any further address in parentheses. */
export function describeUrls(what: string, scheme: string, hostPorts: string[]): string {
  const [first, ...more] = hostPorts.map((h) => (scheme === '' ? h : `${scheme}://${h}/`));
  return `${what} on ${first}${more.length > 0 ? ` (also ${more.join(', ')})` : ''}`;
}
