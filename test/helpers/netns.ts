/**
 * A stand-in for Docker, built from network namespaces: a "host" with bridge docker0 and an address on it,
 * "container" namespaces whose eth0 is a veth on docker0 (with a Docker-like MAC, broadcast address, default
 * route, a resolv.conf pointing at the host, and Docker's DNS rules in iptables), and a "client" on docker0.
 * Traffic stays between these namespaces.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

export interface DockerLikeNetwork {
  host: string;
  /** the container namespaces, in order */
  containers: string[];
  client: string;
  /** docker0's address, the containers' default gateway and DNS server */
  hostIp: string;
  containerIps: string[];
  clientIp: string;
  prefix: number;
  /** with ipv6Containers: docker0's IPv6 address, and the IPv6 addresses of the client and of those containers */
  hostIp6?: string;
  clientIp6?: string;
  containerIp6s: string[];
  /** the launcher run through this lands in the namespace (ip netns exec execs, so the pid stays the launcher's) */
  wrapper(ns: string): string[];
  /** runs a program in a namespace and returns its stdout */
  exec(ns: string, argv: string[], timeoutMs?: number): string;
  /** a DNS server on hostIp that answers name → address (only those names) */
  startResolver(records: Record<string, string>): Promise<void>;
  destroy(): void;
}

const run = (argv: string[], timeoutMs = 30_000) => execFileSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'] });

/** Why the namespace tests cannot run here, or undefined. */
export function whyNoNetnsTests(): string | undefined {
  if (process.getuid?.() !== 0) return 'network namespace tests need root';
  for (const [program, pkg] of [['ip', 'iproute2'], ['nft', 'nftables'], ['dnsmasq', 'dnsmasq-base'], ['iptables-save', 'iptables'], ['socat', 'socat'], ['ping', 'iputils-ping']] as const) {
    try {
      run(['sh', '-c', `command -v ${program}`]);
    } catch {
      return `${program} is not installed (apt-get install ${pkg})`;
    }
  }
  return undefined;
}

/** The IPv6 /64 of a network made with ipv6Containers, as `docker network create --ipv6` would give one. */
const IPV6_SUBNET = 'fd00:d0c:0:1';

/**
 * Builds the namespaces. `subnet` is docker0's /24 (its first three octets), `containers` how many container
 * namespaces to make; the first `ipv6Containers` of them (and docker0 and the client) also get an IPv6 address
 * and default route. Names are unique per process and tag.
 */
export function createDockerLikeNetwork(tag: string, options: { subnet?: string; containers?: number; ipv6Containers?: number } = {}): DockerLikeNetwork {
  const subnet = options.subnet ?? '172.17.0';
  const id = `snabbvm-t${process.pid}-${tag}`;
  const host = `${id}-host`;
  const client = `${id}-client`;
  const containers = Array.from({ length: options.containers ?? 1 }, (_, i) => `${id}-ctr${i}`);
  const hostIp = `${subnet}.1`;
  const clientIp = `${subnet}.250`;
  const containerIps = containers.map((_, i) => `${subnet}.${i + 2}`);
  const ipv6Count = options.ipv6Containers ?? 0;
  const hostIp6 = ipv6Count > 0 ? `${IPV6_SUBNET}::1` : undefined;
  const clientIp6 = ipv6Count > 0 ? `${IPV6_SUBNET}::250` : undefined;
  const containerIp6s = containers.slice(0, ipv6Count).map((_, i) => `${IPV6_SUBNET}::${i + 2}`);
  const processes: ChildProcess[] = [];
  const ipn = (ns: string, ...args: string[]) => run(['ip', '-n', ns, ...args]);
  const exec = (ns: string, argv: string[], timeoutMs?: number) => run(['ip', 'netns', 'exec', ns, ...argv], timeoutMs);

  const destroy = () => {
    for (const p of processes) p.kill('SIGKILL');
    for (const ns of [client, ...containers, host]) {
      try {
        run(['ip', 'netns', 'delete', ns]);
      } catch {}
      rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
    }
  };

  try {
    for (const ns of [host, client, ...containers]) {
      run(['ip', 'netns', 'add', ns]);
      ipn(ns, 'link', 'set', 'lo', 'up');
    }
    ipn(host, 'link', 'add', 'docker0', 'type', 'bridge');
    ipn(host, 'address', 'add', `${hostIp}/24`, 'brd', '+', 'dev', 'docker0');
    ipn(host, 'link', 'set', 'docker0', 'up');
    if (hostIp6 !== undefined) {
      ipn(host, 'address', 'add', `${hostIp6}/64`, 'dev', 'docker0', 'nodad');
      run(['ip', 'netns', 'exec', host, 'sysctl', '-q', '-w', 'net.ipv6.conf.all.forwarding=1']);
    }
    const attach6 = (ns: string, ip6: string) => {
      ipn(ns, 'address', 'add', `${ip6}/64`, 'dev', 'eth0', 'nodad');
      ipn(ns, '-6', 'route', 'add', 'default', 'via', hostIp6!);
    };
    const attach = (ns: string, ip: string, index: number, mac: string) => {
      const veth = `veth${index}`;
      ipn(host, 'link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
      ipn(host, 'link', 'set', veth, 'master', 'docker0', 'up');
      ipn(ns, 'link', 'set', 'eth0', 'address', mac);
      ipn(ns, 'address', 'add', `${ip}/24`, 'brd', '+', 'dev', 'eth0');
      ipn(ns, 'link', 'set', 'eth0', 'up');
      ipn(ns, 'route', 'add', 'default', 'via', hostIp);
    };
    const macOf = (ip: string) => `02:42:${ip.split('.').map((o) => Number(o).toString(16).padStart(2, '0')).join(':')}`;
    attach(client, clientIp, 0, macOf(clientIp));
    if (clientIp6 !== undefined) attach6(client, clientIp6);
    containers.forEach((ns, i) => {
      attach(ns, containerIps[i]!, i + 1, macOf(containerIps[i]!));
      if (containerIp6s[i] !== undefined) attach6(ns, containerIp6s[i]!);
      // what Docker leaves in a container: its DNS rules, and a resolv.conf (ip netns exec mounts this one)
      exec(ns, ['iptables', '-t', 'nat', '-N', 'DOCKER_OUTPUT']);
      exec(ns, ['iptables', '-t', 'nat', '-A', 'OUTPUT', '-d', '127.0.0.11/32', '-j', 'DOCKER_OUTPUT']);
      exec(ns, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=0']);
      mkdirSync(`/etc/netns/${ns}`, { recursive: true });
      writeFileSync(`/etc/netns/${ns}/resolv.conf`, `nameserver ${hostIp}\n`);
    });
    // IPv6 duplicate address detection marks link-local addresses tentative for a second or two: wait, so that
    // snapshots taken from now on compare equal
    for (let i = 0; i < 50 && [host, client, ...containers].some((ns) => ipn(ns, 'address', 'show', 'tentative') !== ''); i++) run(['sleep', '0.2']);
  } catch (err) {
    destroy();
    throw err;
  }

  return {
    host,
    containers,
    client,
    hostIp,
    containerIps,
    clientIp,
    prefix: 24,
    ...(hostIp6 !== undefined ? { hostIp6, clientIp6 } : {}),
    containerIp6s,
    wrapper: (ns) => ['ip', 'netns', 'exec', ns],
    exec,
    async startResolver(records) {
      const argv = ['ip', 'netns', 'exec', host, 'dnsmasq', '--keep-in-foreground', '--conf-file=/dev/null', '--pid-file', '--no-hosts', '--no-resolv', '--user=root',
        '--bind-interfaces', `--listen-address=${hostIp}`, '--log-facility=-', ...Object.entries(records).map(([name, ip]) => `--address=/${name}/${ip}`)];
      const resolver = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore' });
      processes.push(resolver);
      for (let i = 0; i < 50; i++) {
        if (exec(host, ['ss', '-Hlun', `sport = :53`]).includes(hostIp)) return;
        await sleep(100);
      }
      throw new Error('the test resolver did not start');
    },
    destroy,
  };
}

/**
 * What the launcher must leave as it found it in a namespace: links, addresses, routes, nft and iptables rules,
 * and net.ipv4.ip_forward.
 */
export function snapshotNetwork(ns: string): string {
  const show = (...argv: string[]) => `### ${argv.join(' ')}\n${run(['ip', 'netns', 'exec', ns, ...argv])}`;
  return [
    show('ip', 'link'),
    show('ip', 'address'),
    show('ip', '-4', 'route', 'show', 'table', 'all'),
    show('ip', '-6', 'route', 'show', 'table', 'all'),
    show('nft', 'list', 'ruleset'),
    show('iptables-save').replace(/^#.*\n/gm, ''),
    show('sysctl', 'net.ipv4.ip_forward', 'net.ipv6.conf.all.forwarding'),
  ]
    .join('\n')
    .replace(/counter packets \d+ bytes \d+/g, 'counter')
    .replace(/\[\d+:\d+\]/g, '[]');
}
