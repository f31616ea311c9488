/**
 * Packets per second VM to VM through `snabb snabbnfv traffic soft`, side by side in one run:
 *   - plain: two ports with nothing on them;
 *   - filtered: the same ports with VLAN 100 and a MAC filter (ingress `ether dst <the VM's MAC> or broadcast`).
 * Two launchers boot the test cloud image under TCG with `vhost-user:` ports on the switch; VM A blasts UDP at
 * VM B from Python. The switch's config file is rewritten live between rounds (Snabb rereads it), and the rate is
 * read from Snabb's own link counters (packets delivered into B's vhost-user port). Prints the median of each and
 * their ratio, and the huge pages Snabb took for its buffers.
 *
 * Under TCG the guests are the bottleneck, so this is functional evidence that the filter and the VLAN cost
 * nothing visible here, not a line-rate figure: see docs/snabb.md for what 82599 line rate needs.
 *
 * Run (root, Snabb at /usr/local/bin/snabb): node dist/bench/snabb-switch.js [rounds] [seconds per round]
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { macAddress } from '../src/network/mac-address.js';
import { renderSnabbConfig, type SnabbPort } from '../src/snabb/render-snabb-config.js';
import { cloudImagePath } from '../test/helpers/fixtures.js';
import { startLauncher } from '../test/helpers/launcher.js';

const rounds = Number(process.argv[2] ?? 3);
const seconds = Number(process.argv[3] ?? 20);
const SNABB = '/usr/local/bin/snabb';
const work = mkdtempSync(path.join(tmpdir(), 'snabbvm-bench-snabb-'));
const swDir = path.join(work, 'sw');
const configFile = path.join(work, 'switch.lua');
mkdirSync(swDir);

const macA = macAddress('bench-snabb-a', 1);
const macB = macAddress('bench-snabb-b', 1);
const configs: Record<'plain' | 'filtered', SnabbPort[]> = {
  plain: [{ portId: 'a' }, { portId: 'b' }],
  filtered: [
    { portId: 'a', vlan: 100, mac: macA, ingress: `ether dst ${macA} or ether broadcast` },
    { portId: 'b', vlan: 100, mac: macB, ingress: `ether dst ${macB} or ether broadcast` },
  ],
};

const BLASTER = `#!/usr/bin/python3
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
payload = b"x" * 18
while True:
    try:
        s.sendto(payload, ("10.77.0.2", 9))
    except OSError:
        pass
`;
const USER_DATA = `#cloud-config
ssh_genkeytypes: []
write_files:
  - path: /usr/local/bin/blaster
    permissions: '0755'
    content: |
${BLASTER.split('\n').map((l) => `      ${l}`).join('\n')}
runcmd:
  - [sh, -c, 'until ping -c1 -W1 10.77.0.2; do sleep 1; done; echo BLASTING > /dev/ttyS0']
  - [systemd-run, --unit=blaster, /usr/local/bin/blaster]
`;

/** Packets Snabb has delivered into port b (link `... -> b_Virtio.rx`), or undefined before it exists. */
function deliveredToB(pid: number): number | undefined {
  const links = path.join('/var/run/snabb', String(pid), 'links');
  try {
    const link = readdirSync(links).find((l) => l.endsWith(' -> b_Virtio.rx'));
    if (!link) return undefined;
    return Number(readFileSync(path.join(links, link, 'rxpackets.counter')).readBigUInt64LE(0));
  } catch {
    return undefined;
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  if (!existsSync(SNABB)) throw new Error(`${SNABB} is not installed`);
  const image = cloudImagePath();
  writeFileSync(configFile, renderSnabbConfig(configs.plain));
  writeFileSync(path.join(work, 'user-data-a'), USER_DATA);
  writeFileSync(path.join(work, 'user-data-b'), '#cloud-config\nssh_genkeytypes: []\n');
  const snabb = spawn(SNABB, ['snabbnfv', 'traffic', '-k', '10', '-D', '0', 'soft', configFile, `${swDir}/%s.sock`], { stdio: 'ignore' });
  const common = ['--accel', 'tcg', '-m', '512', '--net', 'none', '--vnc', 'none', '--web', 'none', '--console', 'none', '--stop-timeout', '30'];
  const vmB = startLauncher([...common, '--name', 'bench-snabb-b', '--run-dir', path.join(work, 'b'), '-u', path.join(work, 'user-data-b'), image, `vhost-user:${swDir}/b.sock,ip=10.77.0.2/24`]);
  // A's serial console goes to its stdout, where the BLASTING marker shows
  const vmA = startLauncher([...common, '--console', 'stdio', '--name', 'bench-snabb-a', '--run-dir', path.join(work, 'a'), '-u', path.join(work, 'user-data-a'), image, `vhost-user:${swDir}/a.sock,ip=10.77.0.1/24`]);
  try {
    console.error('bench: booting two VMs under TCG (minutes on a loaded machine)...');
    await vmA.waitFor(/BLASTING/, 1_200_000);
    await sleep(5000);
    const rates: Record<'plain' | 'filtered', number[]> = { plain: [], filtered: [] };
    for (let r = 0; r < rounds; r++) {
      for (const kind of ['plain', 'filtered'] as const) {
        writeFileSync(configFile, renderSnabbConfig(configs[kind]));
        await sleep(3000); // Snabb rereads within a second; let the ports settle
        const c0 = deliveredToB(snabb.pid!);
        const t0 = Date.now();
        await sleep(seconds * 1000);
        const c1 = deliveredToB(snabb.pid!);
        const pps = c0 === undefined || c1 === undefined ? 0 : ((c1 - c0) * 1000) / (Date.now() - t0);
        rates[kind].push(pps);
        console.error(`bench: round ${r + 1} ${kind}: ${pps.toFixed(0)} packets/s`);
      }
    }
    const dma = path.join('/var/run/snabb', String(snabb.pid), 'group/dma');
    const pages = existsSync(dma) ? readdirSync(dma).length : 0;
    const plain = median(rates.plain);
    const filtered = median(rates.filtered);
    console.log(`VM to VM through snabbnfv soft, UDP 60-byte frames, TCG guests, ${rounds} rounds of ${seconds} s:`);
    console.log(`  plain ports:               ${plain.toFixed(0)} packets/s (median)`);
    console.log(`  VLAN 100 + MAC filter:     ${filtered.toFixed(0)} packets/s (median)`);
    console.log(`  ratio filtered / plain:    ${(filtered / plain).toFixed(3)} (per round: ${rates.filtered.map((f, i) => (f / rates.plain[i]!).toFixed(2)).join(', ')})`);
    console.log(`  Snabb's DMA huge pages:    ${pages} x 2 MiB`);
  } finally {
    vmA.child.kill('SIGTERM');
    vmB.child.kill('SIGTERM');
    await Promise.all([vmA.exited, vmB.exited]);
    snabb.kill('SIGTERM');
    await new Promise((r) => snabb.once('exit', r));
    for (const f of readdirSync('/tmp').filter((f) => f.startsWith(`vhost_features_${work.replace(/\//g, '__')}`))) rmSync(path.join('/tmp', f));
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
