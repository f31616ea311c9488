/**
 * eth0 in nat, bridge and user modes against real iproute2, nft, dnsmasq and QEMU (TCG) booting the fixture cloud
 * image, in namespaces that stand in for Docker (test/helpers/netns.ts). docker0 is 10.0.2.0/24 here, the
 * subnet nat mode would take first, so nat must pick another. After every run, success or failure, the
 * container namespace's links, addresses, routes, nft/iptables rules and ip_forward are as they were.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { eui64Address, hostInPrefix, ulaPrefix64 } from '../src/network/ipv6.js';
import { macAddress } from '../src/network/mac-address.js';
import { cloudImagePath, whyNoVmTests } from './helpers/fixtures.js';
import { processesMatching, runLauncher, startLauncher, type LauncherRun } from './helpers/launcher.js';
import { createDockerLikeNetwork, snapshotNetwork, whyNoNetnsTests, type DockerLikeNetwork } from './helpers/netns.js';

const skip = whyNoNetnsTests();
const skipVm = skip ?? whyNoVmTests();
const work = mkdtempSync(path.join(tmpdir(), 'snabbvm-network-'));
const PROBE_NAME = 'probe.test.example';
const PROBE_ADDRESS = '10.99.0.7';

/**
 * user-data: a server answering "vm-answer <proto> <port>" on the given ports (IPv4 and IPv6), then, once it listens,
 * one line on the serial console with the guest's eth0 address, whether it pings the host, and what the probe name
 * resolves to. With `ipv6`, a second line: the global IPv6 address eth0 took from the router advertisement (waited
 * for), and whether it pings each of the `ipv6` addresses.
 */
function userData(hostIp: string, ports: string[], ipv6: string[] = []): string {
  const ping6 = ipv6.map((a, i) => `ping6_${i}=$(ping -6 -c1 -W5 ${a} >/dev/null && echo ok || echo fail)`).join(' ');
  const check6 = ipv6.length === 0 ? '' : `
  - [sh, -c, 'for i in $(seq 60); do ip -6 -o addr show eth0 scope global | grep -q inet6 && break; sleep 1; done; echo "NETCHECK6 addr6=$(ip -6 -o addr show eth0 scope global | tr -s " " | cut -d" " -f4 | head -1) ${ping6}" > /dev/ttyS0']`;
  return `#cloud-config
write_files:
  - path: /usr/local/bin/answer.py
    content: |
      import socket, sys, threading
      def tcp(s, port):
          while True:
              c, _ = s.accept(); c.sendall(b'vm-answer tcp %d\\n' % port); c.close()
      def udp(s, port):
          while True:
              _, peer = s.recvfrom(512); s.sendto(b'vm-answer udp %d\\n' % port, peer)
      for spec in sys.argv[1:]:
          proto, port = spec.split(':')
          s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM if proto == 'tcp' else socket.SOCK_DGRAM)
          s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
          s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('::', int(port)))
          if proto == 'tcp': s.listen(8)
          threading.Thread(target=tcp if proto == 'tcp' else udp, args=(s, int(port))).start()
      open('/run/answer.ready', 'w').close()
runcmd:
  - [systemd-run, --unit=answer, python3, /usr/local/bin/answer.py, ${ports.map((p) => `'${p}'`).join(', ')}]
  - [sh, -c, 'for i in $(seq 300); do [ -e /run/answer.ready ] && break; sleep 1; done; echo "NETCHECK addr=$(ip -4 -o addr show eth0 | tr -s " " | cut -d" " -f4) ping=$(ping -c1 -W5 ${hostIp} >/dev/null && echo ok || echo fail) dns=$(getent hosts ${PROBE_NAME} | cut -d" " -f1)" > /dev/ttyS0']${check6}
`;
}

const NETCHECK = /NETCHECK addr=(\S*) ping=(\w+) dns=(\S*)/;

describe('eth0 networking in Docker-like namespaces', { skip }, () => {
  let n: DockerLikeNetwork;
  let tinyImage: string;
  let image: string;
  before(async () => {
    if (skipVm === undefined) image = cloudImagePath(); // built once, outside the tests' timeouts
    // the first container is on an IPv6 network too, as with `docker network create --ipv6`
    n = createDockerLikeNetwork('net', { subnet: '10.0.2', containers: 3, ipv6Containers: 1 });
    await n.startResolver({ 'test.example': PROBE_ADDRESS });
    tinyImage = path.join(work, 'tiny.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', tinyImage, '64M']);
  });
  after(() => n?.destroy());

  /** the launcher in container namespace `i`, with TCG, VNC :1, no web console, serial on stdout */
  const launch = (i: number, name: string, args: string[], wrapperTail: string[] = []) =>
    startLauncher(['--accel', 'tcg', '--web', 'none', '--console', 'stdio', '--name', name, '--run-dir', path.join(work, name), ...args], { wrapper: [...n.wrapper(n.containers[i]!), ...wrapperTail] });
  const fromClient = (argv: string[]) => n.exec(n.client, argv, 20_000);
  /** what a TCP (or UDP) server at addr:port (IPv4 or IPv6) sends first, as the client sees it */
  const ask = (proto: 'tcp' | 'udp', addr: string, port: number): string => {
    const v6 = addr.includes(':');
    const target = `${proto.toUpperCase()}${v6 ? '6' : ''}:${v6 ? `[${addr}]` : addr}:${port}`;
    try {
      return proto === 'tcp'
        ? execFileSync('ip', ['netns', 'exec', n.client, 'socat', '-T', '5', '-u', target, '-'], { encoding: 'utf8', timeout: 15_000 }).slice(0, 64)
        : execFileSync('ip', ['netns', 'exec', n.client, 'socat', '-T', '3', '-', target], { input: 'hello\n', encoding: 'utf8', timeout: 15_000 });
    } catch (err) {
      return `failed: ${(err as { stderr?: string }).stderr?.trim() ?? (err as Error).message}`;
    }
  };
  /** after a failed assertion: a SIGKILLed launcher would leave its QEMU running, so ask it to stop first */
  async function stopIfRunning(vm: LauncherRun) {
    if (vm.child.exitCode !== null || vm.child.signalCode !== null) return;
    vm.child.kill('SIGTERM');
    const timer = setTimeout(() => vm.child.kill('SIGKILL'), 150_000);
    await vm.exited;
    clearTimeout(timer);
  }
  async function stopAndCheck(vm: LauncherRun, ns: string, before: string) {
    vm.child.kill('SIGTERM');
    const { code } = await vm.exited;
    assert.equal(code, 0, vm.stderr());
    assert.equal(snapshotNetwork(ns), before, 'links, addresses, routes, rules and ip_forward are as before the run');
  }

  test('without CAP_NET_ADMIN, nat and bridge stop at once with exit 4, naming --privileged and --net user; nothing is made', async () => {
    const ns = n.containers[0]!;
    const snapshot = snapshotNetwork(ns);
    for (const mode of ['nat', 'bridge']) {
      const runDir = path.join(work, `nocap-${mode}`);
      const r = await runLauncher(['--accel', 'tcg', '--net', mode, '--name', `net-nocap`, '--run-dir', runDir, tinyImage], {
        wrapper: [...n.wrapper(ns), 'setpriv', '--bounding-set', '-net_admin', '--'],
      });
      assert.equal(r.code, 4, r.stderr);
      assert.match(r.stderr, new RegExp(`^snabbvm: error: --net ${mode} needs CAP_NET_ADMIN.*--privileged.*--net user`));
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.equal(existsSync(runDir), false, 'no run folder was made');
      assert.equal(snapshotNetwork(ns), snapshot);
    }
  });

  test('a start that fails after the network is up (QEMU dies) leaves nat and bridge namespaces as they were', async () => {
    const ns = n.containers[0]!;
    const snapshot = snapshotNetwork(ns);
    for (const mode of ['nat', 'bridge']) {
      const r = await runLauncher(['--accel', 'tcg', '--net', mode, '--vnc', 'none', '--web', 'none', '--console', 'none', '--qemu', '/bin/false', '--name', `net-fail-${mode}`, '--run-dir', path.join(work, `fail-${mode}`), tinyImage], { wrapper: n.wrapper(ns) });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`eth0: ${mode === 'nat' ? 'nat on 10\\.0\\.3\\.0/24' : 'bridged onto'}`), 'the network was set up before QEMU failed');
      assert.match(r.stderr, /false exited with code 1/);
      assert.doesNotMatch(r.stderr, /cleanup: .* failed/);
      assert.deepEqual(await processesMatching(`--dhcp-leasefile=${path.join(work, `fail-${mode}`)}`), [], 'no dnsmasq is left');
      assert.equal(snapshotNetwork(ns), snapshot);
    }
  });

  test('nat: DHCP lease, host and DNS reached, every port forwarded but VNC and --forward-exclude; IPv6 by RA, NAT66 and forwarded; teardown exact', { skip: skipVm, timeout: 900_000 }, async () => {
    const ns = n.containers[0]!;
    const containerIp = n.containerIps[0]!;
    const containerIp6 = n.containerIp6s[0]!;
    const prefix64 = ulaPrefix64('net-nat');
    const bridgeIp6 = hostInPrefix(prefix64, 2);
    const vmIp6 = eui64Address(prefix64, macAddress('net-nat', 0));
    const snapshot = snapshotNetwork(ns);
    const ud = path.join(work, 'nat-user-data');
    writeFileSync(ud, userData(n.hostIp, ['tcp:8080', 'tcp:5901', 'tcp:8081', 'udp:7777'], [bridgeIp6, containerIp6, n.hostIp6!]));
    const vm = launch(0, 'net-nat', ['--net', 'nat', '--forward-exclude', '8081', '--stop-timeout', '120', '-u', ud, image]);
    try {
      // docker0 holds 10.0.2.0/24, so the VM's subnet is the next one
      await vm.waitFor(/eth0: nat on 10\.0\.3\.0\/24, the VM is 10\.0\.3\.15; every port of eth0's address goes to it except TCP 5901, 8081 and UDP 5901, 8081/, 60_000);
      const [, addr, ping, dns] = (await vm.waitFor(NETCHECK, 700_000)) as string[];
      assert.equal(addr, '10.0.3.15/24', 'the VM got its fixed lease');
      assert.equal(ping, 'ok', 'the VM reaches the host through the masquerade');
      assert.equal(dns, PROBE_ADDRESS, "the VM resolves through dnsmasq, which forwards to the container's resolver");
      const leaseLog = readFileSync(path.join(work, 'net-nat', 'dnsmasq', 'dnsmasq.log'), 'utf8');
      assert.match(leaseLog, /DHCPACK\(br-net-nat\) 10\.0\.3\.15 /);
      assert.match(vm.stderr(), new RegExp(`eth0: IPv6 on ${hostInPrefix(prefix64, 0)}/64 by router advertisement, the VM is ${vmIp6}; out through eth0 by NAT66`));

      const [, addr6, bridgePing, containerPing, hostPing] = (await vm.waitFor(/NETCHECK6 addr6=(\S*) ping6_0=(\w+) ping6_1=(\w+) ping6_2=(\w+)/, 120_000)) as string[];
      assert.equal(addr6, `${vmIp6}/64`, "the guest took the advertised prefix with its MAC's EUI-64 address");
      assert.equal(bridgePing, 'ok', "ping -6 from the guest to the container's address on the inside link");
      assert.equal(containerPing, 'ok', "ping -6 from the guest to the container's eth0 address");
      assert.equal(hostPing, 'ok', 'ping -6 from the guest beyond the container, by NAT66');
      assert.equal(ask('tcp', containerIp6, 8080), 'vm-answer tcp 8080\n', "a TCP port on the container's IPv6 address reaches the VM");
      assert.equal(ask('udp', containerIp6, 7777), 'vm-answer udp 7777\n', 'so does a UDP port');
      assert.doesNotMatch(ask('tcp', containerIp6, 5901), /vm-answer/, "5901 stays the launcher's over IPv6 too (its VNC listens on IPv4 here)");
      assert.match(ask('tcp', containerIp6, 8081), /^failed: .*Connection refused/, '--forward-exclude 8081 stays with the container over IPv6 too');

      assert.equal(ask('tcp', containerIp, 8080), 'vm-answer tcp 8080\n', "a TCP port on the container's address reaches the VM");
      assert.equal(ask('udp', containerIp, 7777), 'vm-answer udp 7777\n', 'so does a UDP port');
      assert.match(ask('tcp', containerIp, 5901), /^RFB 003\.008/, "5901 is the launcher's VNC, not the VM's server on 5901");
      assert.match(ask('tcp', containerIp, 8081), /^failed: .*Connection refused/, '--forward-exclude 8081 stays with the container');
      assert.match(fromClient(['ping', '-c1', '-W5', containerIp]), /1 received/, 'ICMP to the container is still the container');
      await stopAndCheck(vm, ns, snapshot);
      assert.deepEqual(await processesMatching(`--dhcp-leasefile=${path.join(work, 'net-nat')}`), [], 'no dnsmasq is left');
    } finally {
      await stopIfRunning(vm);
    }
  });

  test('bridge: the VM answers ping at its --ip on the Docker network; the container keeps its address; teardown exact', { skip: skipVm, timeout: 900_000 }, async () => {
    const ns = n.containers[1]!;
    const containerIp = n.containerIps[1]!;
    const vmIp = '10.0.2.50';
    const snapshot = snapshotNetwork(ns);
    const ud = path.join(work, 'bridge-user-data');
    writeFileSync(ud, userData(n.hostIp, ['tcp:8080']));
    const vm = launch(1, 'net-br', ['--net', 'bridge', '--ip', `${vmIp}/24`, '--stop-timeout', '120', '-u', ud, image]);
    try {
      await vm.waitFor(/eth0: bridged onto the container's eth0 \(bridge br-net-br\); the VM is 10\.0\.2\.50\/24/, 60_000);
      const during = n.exec(ns, ['ip', '-o', '-4', 'address', 'show', 'dev', 'br-net-br']);
      assert.match(during, new RegExp(`inet ${containerIp.replace(/\./g, '\\.')}/24`), "the container's address moved onto the bridge");
      const [, addr, ping] = (await vm.waitFor(NETCHECK, 700_000)) as string[];
      assert.equal(addr, `${vmIp}/24`);
      assert.equal(ping, 'ok', 'the VM reaches the host directly');
      assert.match(fromClient(['ping', '-c2', '-W5', vmIp]), /2 received/, 'the client pings the VM');
      assert.match(fromClient(['ping', '-c2', '-W5', containerIp]), /2 received/, 'and the container, at its same address');
      assert.equal(ask('tcp', vmIp, 8080), 'vm-answer tcp 8080\n');
      await stopAndCheck(vm, ns, snapshot);
    } finally {
      await stopIfRunning(vm);
    }
  });

  test('user: a --forward port on the container reaches the VM; nothing in the namespace changes', { skip: skipVm, timeout: 900_000 }, async () => {
    // a Docker network of its own: QEMU's user-mode network is 10.0.2.0/24 too, and the guest would take a
    // client on the docker0 above for a neighbour on its own subnet (docs/networking.md)
    const u = createDockerLikeNetwork('usr', { subnet: '172.17.0' });
    const ns = u.containers[0]!;
    try {
      const snapshot = snapshotNetwork(ns);
      const ud = path.join(work, 'user-user-data');
      writeFileSync(ud, userData(u.hostIp, ['tcp:8080']));
      const vm = startLauncher(['--accel', 'tcg', '--web', 'none', '--console', 'stdio', '--name', 'net-user', '--run-dir', path.join(work, 'net-user'), '--net', 'user', '--forward', 'tcp:18080:8080', '--stop-timeout', '120', '-u', ud, image], { wrapper: u.wrapper(ns) });
      try {
        const [, addr] = (await vm.waitFor(NETCHECK, 700_000)) as string[];
        assert.equal(addr, '10.0.2.15/24', "QEMU's user-mode DHCP");
        const answer = execFileSync('ip', ['netns', 'exec', u.client, 'socat', '-T', '10', '-u', `TCP:${u.containerIps[0]}:18080`, '-'], { encoding: 'utf8', timeout: 30_000 });
        assert.equal(answer, 'vm-answer tcp 8080\n');
        await stopAndCheck(vm, ns, snapshot);
      } finally {
        await stopIfRunning(vm);
      }
    } finally {
      u.destroy();
    }
  });
});
