/**
 * The runtime under faults, on real TCG boots of the fixture image in a Docker-like namespace (nat mode: real
 * dnsmasq, bridge, tap, nft). One VM, named with a dot, its run folder under a path with a comma, and every
 * password variable set:
 *   1. it starts (the tmux session is found by the name tmux gives it; QEMU's argv doubles the comma), and no
 *      child (QEMU, dnsmasq, the tmux server) holds a password in its environment; dnsmasq is not root;
 *   2. dnsmasq is killed: the launcher starts it again, and the booting guest gets its lease from the new one;
 *   3. the launcher is killed with SIGKILL (no teardown), and a new launcher of the same name takes the stale
 *      folder, QEMU, tmux server, dnsmasq and network over, and its VM runs; a third launcher of the same name
 *      then exits 6 and changes nothing;
 *   4. that VM's QEMU is killed: exit 1 with one clear line, and everything is gone (run folder, processes,
 *      bridge, tap, nft table, ip_forward as before).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cloudImagePath, whyNoVmTests } from './helpers/fixtures.js';
import { launcherPath, processesMatching, runLauncher, startLauncher, type LauncherRun } from './helpers/launcher.js';
import { createDockerLikeNetwork, snapshotNetwork, whyNoNetnsTests, type DockerLikeNetwork } from './helpers/netns.js';
import { waitUntil } from './helpers/wait-until.js';

const skip = whyNoNetnsTests() ?? whyNoVmTests();
const work = mkdtempSync(path.join(tmpdir(), 'snabbvm-faults-'));
const NAME = 'ft.1';
const runDir = path.join(work, 'run,dir', NAME);
const SECRETS = { SNABBVM_PASSWORD: 'guest-secret-1', SNABBVM_WEB_PASSWORD: 'web-secret-2', SNABBVM_VNC_PASSWORD: 'vnc-3' };

const environOf = (pid: number) => readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
const assertNoSecrets = (lines: string[], what: string) => {
  for (const [name, value] of Object.entries(SECRETS)) {
    assert.ok(!lines.some((l) => l.startsWith(`${name}=`) || l.includes(value)), `${what} holds ${name}: ${lines.filter((l) => l.startsWith('SNABBVM')).join(' ')}`);
  }
};
const uidOf = (pid: number) => Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
const alive = (pid: number) => existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
/** pids whose command line mentions this run folder's dnsmasq lease file */
const dnsmasqPids = async () => (await processesMatching(`--dhcp-leasefile=${runDir}/dnsmasq/leases`)).filter((p) => /^\d+: \S*dnsmasq /.test(p)).map((p) => Number(p.split(':')[0]));
const state = () => JSON.parse(readFileSync(path.join(runDir, 'state.json'), 'utf8')) as { pid: number; qemuPid: number };

describe('runtime faults on a real boot: QEMU, dnsmasq and the launcher killed', { skip }, () => {
  let n: DockerLikeNetwork;
  let ns: string;
  let image: string;
  let before0: string;
  let vm: LauncherRun | undefined;
  before(() => {
    image = cloudImagePath();
    n = createDockerLikeNetwork('faults', { subnet: '172.31.9' });
    ns = n.containers[0]!;
    before0 = snapshotNetwork(ns);
    mkdirSync(path.dirname(runDir), { recursive: true });
  });
  after(async () => {
    if (vm && vm.child.exitCode === null && vm.child.signalCode === null) {
      vm.child.kill('SIGTERM');
      await vm.exited;
    }
    n?.destroy();
    rmSync(work, { recursive: true, force: true });
  });

  const launch = () =>
    startLauncher(['--accel', 'tcg', '--net', 'nat', '--vnc', '7', '--web', 'none', '--console', 'tmux', '--name', NAME, '--run-dir', runDir, '--stop-timeout', '5', image], {
      wrapper: n.wrapper(ns),
      env: SECRETS,
    });
  const snabbvm = (args: string[]) => execFileSync(process.execPath, [launcherPath, ...args], { encoding: 'utf8', timeout: 30_000 });

  test("a VM named 'ft.1' with its run folder under 'run,dir' starts; its tmux session is found; no child holds a password; dnsmasq is not root", async () => {
    vm = launch();
    await vm.waitFor(/VM 'ft\.1' is running/, 180_000);
    const s = state();
    const qemuArgv = readFileSync(`/proc/${s.qemuPid}/cmdline`, 'utf8').split('\0');
    assert.ok(qemuArgv.includes(`file=${runDir.replace(/,/g, ',,')}/disk.qcow2,format=qcow2,if=virtio,discard=unmap`), qemuArgv.join(' '));

    // what `snabbvm attach` asks for, and the session it then attaches to
    const { controlRequest } = await import('../src/lifecycle/control-client.js');
    const session = await controlRequest<{ socket: string; session: string }>(path.join(runDir, 'control.sock'), { cmd: 'attach' });
    assert.equal(session.session, 'ft_1');
    execFileSync('tmux', ['-S', session.socket, 'has-session', '-t', session.session]);
    assert.match(snabbvm(['status', '--run-dir', runDir]), /tmux session ft_1/);

    assertNoSecrets(environOf(s.qemuPid), 'QEMU');
    assertNoSecrets(execFileSync('tmux', ['-S', session.socket, 'show-environment', '-g'], { encoding: 'utf8' }).split('\n'), "the VM's tmux server");
    const [dnsmasq] = await dnsmasqPids();
    assert.ok(dnsmasq, 'dnsmasq runs');
    assertNoSecrets(environOf(dnsmasq), 'dnsmasq');
    assert.notEqual(uidOf(dnsmasq), 0, 'dnsmasq dropped root');
  });

  test('dnsmasq killed while the guest boots: the launcher starts it again, and the guest gets its lease from the new one', async () => {
    const [old] = await dnsmasqPids();
    assert.ok(old);
    process.kill(old, 'SIGKILL');
    const [, pid] = await vm!.waitFor(/dnsmasq restarted \(pid (\d+)\)/, 30_000);
    assert.match(vm!.stderr(), /warning: dnsmasq exited \(SIGKILL\); restarting it/);
    assert.ok(alive(Number(pid)));
    assert.notEqual(uidOf(Number(pid)), 0);
    // the guest asks for its address only once its kernel is up: a lease in the new dnsmasq's file
    const leases = path.join(runDir, 'dnsmasq', 'leases');
    await waitUntil(() => existsSync(leases) && /\s10\.0\.\d+\.15\s/.test(readFileSync(leases, 'utf8')), 300_000, () => `a DHCP lease from the restarted dnsmasq; launcher output:\n${vm!.stderr()}`, 1000);
    assert.equal(vm!.child.exitCode, null, 'the VM runs on');
  });

  test('the launcher killed with SIGKILL: the next launcher of the same name takes the folder, QEMU, tmux, dnsmasq and network over; a third one exits 6', async () => {
    const old = state();
    const oldTmuxPid = Number(execFileSync('tmux', ['-S', path.join(runDir, 'tmux.sock'), 'display-message', '-p', '#{pid}'], { encoding: 'utf8' }).trim());
    vm!.child.kill('SIGKILL');
    await vm!.exited;
    assert.ok(existsSync(path.join(runDir, 'undo.jsonl')), 'the killed launcher left its undo journal');

    vm = launch();
    await vm.waitFor(/VM 'ft\.1' is running/, 180_000);
    assert.match(vm.stderr(), new RegExp(`warning: VM 'ft\\.1': the launcher \\(pid ${old.pid}\\) that ran it last was killed without cleaning up; taking over`));
    assert.doesNotMatch(vm.stderr(), /already exists|cleanup: .* failed/);
    const now = state();
    assert.equal(now.pid, vm.child.pid);
    assert.ok(!alive(old.qemuPid), 'the old QEMU is gone');
    assert.ok(!alive(oldTmuxPid), 'the old tmux server is gone');
    assert.ok(alive(now.qemuPid));
    assert.equal((await dnsmasqPids()).length, 1, 'one dnsmasq: the new launcher\'s');

    // and a third launcher of the same name, while this one runs, exits 6 and changes nothing
    const files = readdirSync(runDir).sort();
    // links, IPv4 addresses and nft rules: the IPv6 link-local addresses of the bridge just made are still
    // settling (tentative), which is not the third launcher's doing
    const network = () => ['ip -br link', 'ip -4 -br address', 'nft list ruleset', 'sysctl net.ipv4.ip_forward'].map((c) => n.exec(ns, c.split(' '))).join('\n');
    const networkBefore = network();
    const third = await runLauncher(['--accel', 'tcg', '--net', 'nat', '--vnc', 'none', '--web', 'none', '--console', 'none', '--name', NAME, '--run-dir', runDir, image], { wrapper: n.wrapper(ns) });
    assert.equal(third.code, 6, third.stderr);
    assert.equal(third.stderr.trim(), `snabbvm: error: a VM named 'ft.1' is already running (pid ${vm.child.pid}, run folder ${runDir}); stop it first (snabbvm stop --name ft.1) or give this one another --name`);
    assert.deepEqual(readdirSync(runDir).sort(), files);
    assert.equal(state().pid, vm.child.pid);
    assert.equal(network(), networkBefore);
  });

  test('QEMU killed mid-run: exit 1 with one clear line, and the run folder, processes and network changes are all gone', async () => {
    const { qemuPid } = state();
    process.kill(qemuPid, 'SIGKILL');
    const { code } = await vm!.exited;
    assert.equal(code, 1, vm!.stderr());
    assert.match(vm!.stderr(), /snabbvm: error: QEMU was killed by SIGKILL without a guest shutdown/);
    assert.doesNotMatch(vm!.stderr(), /cleanup: .* failed/);
    assert.equal(existsSync(runDir), false, 'the run folder is gone');
    assert.ok(existsSync(path.dirname(runDir)), 'its parent folder stays');
    // the tmux windows' console clients get SIGHUP from the server's end: give them a moment
    await waitUntil(async () => (await processesMatching(runDir)).length === 0, 10_000, 'the processes to go').catch(() => {});
    assert.deepEqual(await processesMatching(runDir), [], 'no QEMU, dnsmasq, tmux or console left');
    assert.equal(snapshotNetwork(ns), before0, 'links, addresses, routes, nft and iptables rules and ip_forward are as before the first run');
  });
});
