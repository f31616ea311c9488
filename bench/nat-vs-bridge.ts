/**
 * TCP throughput from a client on the Docker network to the VM, through nat (the container's address, DNAT +
 * conntrack) against bridge (the VM's own address on the network), side by side in one run: two VMs boot at
 * once in two Docker-like container namespaces (test/helpers/netns.ts), each running a TCP sink from
 * cloud-init. The client sends the same amount to each, alternating, and waits for the VM's byte count.
 * Under TCG only the ratio means anything. Run as root: node dist/bench/nat-vs-bridge.js [MiB] [rounds]
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { cloudImagePath } from '../test/helpers/fixtures.js';
import { startLauncher, type LauncherRun } from '../test/helpers/launcher.js';
import { createDockerLikeNetwork } from '../test/helpers/netns.js';

const mib = Number(process.argv[2] ?? 32);
const rounds = Number(process.argv[3] ?? 3);
const work = mkdtempSync(path.join(tmpdir(), 'snabbvm-bench-net-'));
const SINK_PORT = 5001;

// the guest has python3 but no iperf3: a sink that reads to EOF, then answers with the byte count
const userData = `#cloud-config
write_files:
  - path: /usr/local/bin/sink.py
    content: |
      import socket
      s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('', ${SINK_PORT})); s.listen(4)
      open('/dev/ttyS0', 'w').write('SINK-READY\\n')
      while True:
          c, _ = s.accept(); n = 0
          while True:
              b = c.recv(1 << 16)
              if not b: break
              n += len(b)
          c.sendall(b'%d\\n' % n); c.close()
runcmd:
  - [systemd-run, --unit=sink, python3, /usr/local/bin/sink.py]
`;

// the client: send `bytes`, half-close, wait for the sink's count; prints seconds
const clientScript = `
import socket, sys, time
host, port, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
chunk = b'\\0' * (1 << 16)
s = socket.create_connection((host, port), timeout=600)
t0 = time.monotonic(); sent = 0
while sent < total:
    s.sendall(chunk); sent += len(chunk)
s.shutdown(socket.SHUT_WR)
got = int(s.makefile().readline())
assert got == sent, (got, sent)
print(time.monotonic() - t0)
`;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const image = cloudImagePath();
  const n = createDockerLikeNetwork('bench', { subnet: '172.17.0', containers: 2 });
  const vms: LauncherRun[] = [];
  try {
    const ud = path.join(work, 'user-data');
    writeFileSync(ud, userData);
    const bridgeIp = '172.17.0.50';
    const common = (name: string) => ['--accel', 'tcg', '--vnc', 'none', '--web', 'none', '--console', 'stdio', '--name', name, '--run-dir', path.join(work, name), '-u', ud, '--stop-timeout', '120'];
    const nat = startLauncher([...common('bench-nat'), '--net', 'nat', image], { wrapper: n.wrapper(n.containers[0]!) });
    const bridge = startLauncher([...common('bench-br'), '--net', 'bridge', '--ip', `${bridgeIp}/24`, image], { wrapper: n.wrapper(n.containers[1]!) });
    vms.push(nat, bridge);
    console.error('bench: booting two VMs (nat and bridge) under TCG...');
    await Promise.all(vms.map((vm) => vm.waitFor(/SINK-READY/, 600_000)));

    const bytes = mib * 2 ** 20;
    const send = (addr: string) => Number(execFileSync('ip', ['netns', 'exec', n.client, 'python3', '-c', clientScript, addr, String(SINK_PORT), String(bytes)], { encoding: 'utf8', timeout: 600_000 }).trim());
    const times = { nat: [] as number[], bridge: [] as number[] };
    send(n.containerIps[0]!); // warm-up: ARP, conntrack, the guest's page cache
    send(bridgeIp);
    for (let r = 0; r < rounds; r++) {
      times.nat.push(send(n.containerIps[0]!));
      times.bridge.push(send(bridgeIp));
    }
    const mbps = (s: number) => (bytes * 8) / s / 1e6;
    const natRate = mbps(median(times.nat));
    const bridgeRate = mbps(median(times.bridge));
    console.log(`TCP client -> VM, ${mib} MiB x ${rounds} rounds, medians (TCG; absolute numbers are the emulator's):`);
    console.log(`  nat    (container's address, DNAT): ${natRate.toFixed(0)} Mbit/s  [${times.nat.map((t) => t.toFixed(2)).join(' ')} s]`);
    console.log(`  bridge (the VM's own address):      ${bridgeRate.toFixed(0)} Mbit/s  [${times.bridge.map((t) => t.toFixed(2)).join(' ')} s]`);
    console.log(`  nat / bridge = ${(natRate / bridgeRate).toFixed(2)}`);
  } finally {
    for (const vm of vms) vm.child.kill('SIGTERM');
    await Promise.all(vms.map((vm) => vm.exited));
    n.destroy();
  }
}

await main();
