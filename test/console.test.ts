/**
 * Consoles and life in a container, against real QEMU (TCG), the real Debian cloud image and real tmux.
 *
 * One boot covers the terminal case (the launcher on a pseudo-terminal, as PID 1 is under `docker run -it`):
 * tmux session and attach, login on the serial console with the password cloud-init set, a second console through
 * the serial hub, the monitor, `snabbvm status --json`, detach and re-attach, Ctrl-C that is only a key,
 * VNC with a password (RFB handshake, wrong and right password, a real frame of the guest's screen), and SIGTERM
 * (docker stop) while tmux is attached. A second, short run covers headless mode and `snabbvm stop`.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { cloudImagePath, whyNoVmTests } from './helpers/fixtures.js';
import { launcherPath, processesMatching, startLauncher } from './helpers/launcher.js';
import { freeVncDisplay } from './helpers/free-port.js';
import { rfbConnect } from './helpers/rfb-client.js';
import { progressLog, waitUntil } from './helpers/wait-until.js';

const skip = whyNoVmTests() ?? whyNoConsoleTests();
const work = mkdtempSync(path.join(tmpdir(), 'snabbvm-console-'));

function whyNoConsoleTests(): string | undefined {
  for (const [program, args] of [['tmux', ['-V']], ['script', ['--version']]] as const) {
    if (spawnSync(program, args).error) return `${program} is not installed (apt-get install ${program === 'script' ? 'util-linux' : program})`;
  }
  return undefined;
}

/** runs `snabbvm <args>` (a subcommand) to its end */
function snabbvm(args: string[], input?: string) {
  const r = spawnSync(process.execPath, [launcherPath, ...args], { encoding: 'utf8', input: input ?? '', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

const progress = progressLog('console test');

/** Kills whatever a failed or timed-out test left behind (only ours: matched by our own run folders). */
async function killLeftovers(runDir: string) {
  for (const line of await processesMatching(runDir)) {
    try {
      process.kill(Number(line.split(':')[0]), 'SIGKILL');
    } catch {}
  }
}
after(async () => {
  for (const name of ['console-tmux', 'console-stop']) await killLeftovers(path.join(work, name));
  rmSync(work, { recursive: true, force: true });
});

describe('consoles', { skip }, () => {
  test('on a terminal: tmux login, second console, monitor, status, detach/re-attach, Ctrl-C, VNC password, SIGTERM', { timeout: 1_800_000 }, async (t) => {
    const name = 'console-tmux';
    const runDir = path.join(work, name);
    const userData = path.join(work, 'user-data');
    writeFileSync(userData, '#cloud-config\npassword: consolepw\nchpasswd:\n  expire: false\n');
    const display = await freeVncDisplay();
    const vncPort = 5900 + display;
    const args = ['--accel', 'tcg', '--net', 'none', '--web', 'none', '--name', name, '--run-dir', runDir, '--stop-timeout', '120'];
    args.push('--vnc', String(display), '--vnc-listen', '127.0.0.1', '--vnc-password', 'vnc-pw12', '-u', userData, cloudImagePath());

    // `script` gives the launcher a pseudo-terminal on stdin/stdout, as docker run -it does; we type into its stdin
    const launcher = spawn('script', ['-qfec', [process.execPath, launcherPath, ...args].map(quote).join(' '), '/dev/null'], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, TERM: 'xterm-256color' },
    });
    let screen = '';
    launcher.stdout!.on('data', (d: Buffer) => (screen += d.toString()));
    launcher.stderr!.on('data', (d: Buffer) => (screen += d.toString()));
    const exited = new Promise<number | null>((resolve) => launcher.on('exit', (code) => resolve(code)));
    let launcherDone = false;
    void exited.then(() => (launcherDone = true));
    const type = (keys: string) => launcher.stdin!.write(keys);

    const tmuxSocket = path.join(runDir, 'tmux.sock');
    const tmux = (...a: string[]) => execFileSync('tmux', ['-S', tmuxSocket, ...a], { encoding: 'utf8', env: { ...process.env, TMUX: '' } });
    const pane = (window: string) => tmux('capture-pane', '-p', '-J', '-S', '-100', '-t', `${name}:${window}`);
    const clients = () => tmux('list-clients', '-t', name).trim();
    const serialLog = () => (existsSync(path.join(runDir, 'serial.log')) ? readFileSync(path.join(runDir, 'serial.log'), 'utf8') : '');
    const status = () => snabbvm(['status', '--json', '--run-dir', runDir]);
    const notDone = (label: string) => () => `${label}${launcherDone ? ' (the launcher exited)' : ''}\n--- terminal (tail):\n${screen.slice(-2000)}`;
    /** waits for what, giving up at once if the launcher has exited */
    const whileRunning = <T>(what: () => T | undefined | false) => () => {
      if (launcherDone) throw new Error(`the launcher exited\n--- terminal (tail):\n${screen.slice(-2000)}`);
      return what();
    };

    try {
      // --console auto on a terminal: the launcher makes the session and attaches its terminal to it
      await waitUntil(whileRunning(() => existsSync(tmuxSocket) && clients().includes(name)), 90_000, notDone('a tmux client attached'));
      const windows = tmux('list-windows', '-t', name, '-F', '#{window_name}').trim().split('\n');
      assert.deepEqual(windows, ['vm', 'monitor']);
      assert.equal(tmux('show-options', '-gv', 'status-left').trim(), '#[bold] #{session_name} #[default]');

      progress('tmux attached');
      // VNC, before the guest has booted: the handshake, password auth, a wrong password refused
      const wrong = await rfbConnect('127.0.0.1', vncPort, { password: 'wrong' });
      assert.equal(wrong.version, 'RFB 003.008\n');
      assert.deepEqual(wrong.securityTypes, [2], 'VNC authentication only');
      assert.notEqual(wrong.auth, 'ok');
      const qemuArgs = (await processesMatching(`snabbvm-${name}`)).join('\n');
      assert.match(qemuArgs, /-vnc 127\.0\.0\.1:\d+,password-secret=vncpass/);
      assert.doesNotMatch(qemuArgs, /vnc-pw12/, 'the password is not on the command line');

      progress('VNC checked; waiting for cloud-init');
      // the guest boots; cloud-init sets the password
      await waitUntil(whileRunning(() => /Cloud-init v\. \S+ finished/.test(serialLog())), 1_200_000, notDone('cloud-init to finish'));
      const booted = snabbvm(['status', '--json', '--run-dir', runDir]);
      assert.equal(booted.code, 0, booted.stderr);
      t.diagnostic(`cloud-init finished after ${JSON.parse(booted.stdout).uptimeSec} s`);

      progress('cloud-init finished; logging in');
      // log in on the serial console in the tmux `vm` window and run a command
      tmux('send-keys', '-t', `${name}:vm`, 'Enter');
      await waitUntil(() => /login: *$/m.test(pane('vm')), 60_000, () => `login prompt\n${pane('vm')}`);
      tmux('send-keys', '-t', `${name}:vm`, 'debian', 'Enter');
      await waitUntil(() => /Password: *$/m.test(pane('vm')), 60_000, () => `password prompt\n${pane('vm')}`);
      tmux('send-keys', '-t', `${name}:vm`, 'consolepw', 'Enter');
      await waitUntil(() => /\$ *$/m.test(pane('vm')), 60_000, () => `shell prompt\n${pane('vm')}`);
      tmux('send-keys', '-t', `${name}:vm`, 'echo "$(id -un) sum=$((6*7))"', 'Enter');
      await waitUntil(() => pane('vm').includes('debian sum=42'), 60_000, () => `command output\n${pane('vm')}`);

      progress('logged in; second console');
      // a second console through the serial hub, at the same time: it sees the output, and what it types runs
      const second = spawn(process.execPath, [launcherPath, 'console', '--run-dir', runDir], { stdio: ['pipe', 'pipe', 'pipe'] });
      let secondOut = '';
      second.stdout.on('data', (d: Buffer) => (secondOut += d.toString()));
      await waitUntil(() => secondOut.includes('debian sum=42'), 30_000, () => `the second console's replay of recent output\n${secondOut}`);
      second.stdin.write('echo "from the second console $((2+3))"\r');
      await waitUntil(() => pane('vm').includes('from the second console 5'), 60_000, () => `the second console's command in the tmux window\n${pane('vm')}`);
      await waitUntil(() => secondOut.includes('from the second console 5'), 30_000, () => `the second console's own output\n${secondOut}`);
      second.stdin.end();
      assert.equal(await new Promise((resolve) => second.on('exit', resolve)), 0);

      // the monitor, the tmux monitor window and a one-shot command alike
      assert.match(snabbvm(['monitor', '--run-dir', runDir, 'info', 'status']).stdout, /VM status: running/);
      tmux('send-keys', '-t', `${name}:monitor`, 'info name', 'Enter');
      await waitUntil(() => pane('monitor').includes(name), 30_000, () => `the monitor window\n${pane('monitor')}`);

      // status --json while running
      const running = status();
      assert.equal(running.code, 0, running.stderr);
      const s = JSON.parse(running.stdout);
      assert.equal(s.name, name);
      assert.equal(s.state, 'running');
      assert.equal(s.qemuStatus, 'running');
      assert.equal(s.accel, 'tcg');
      assert.equal(s.vnc, `127.0.0.1:${vncPort}`);
      assert.equal(s.tmuxSession, name);
      assert.ok(s.uptimeSec > 0 && s.qemuPid > 0 && s.launcherPid > 0);
      assert.equal(tmux('show-options', '-gv', '@snabbvm_state').trim(), 'running', 'the status bar says running');

      // paused is not healthy: status exits 1 and says so
      snabbvm(['monitor', '--run-dir', runDir, 'stop']);
      const paused = status();
      assert.equal(paused.code, 1);
      assert.equal(JSON.parse(paused.stdout).state, 'paused');
      snabbvm(['monitor', '--run-dir', runDir, 'cont']);
      assert.equal(status().code, 0);

      // VNC with the right password: a real frame of the guest's text console, not a blank screen
      const frame = await rfbConnect('127.0.0.1', vncPort, { password: 'vnc-pw12', frame: true });
      assert.equal(frame.auth, 'ok');
      assert.equal(frame.name, `QEMU (${name})`);
      t.diagnostic(`VNC frame ${frame.width}x${frame.height}: ${frame.colours} colours, ${frame.foregroundPixels} foreground pixels`);
      assert.ok(frame.colours! >= 2 && frame.foregroundPixels! > 500, 'text on the screen');

      progress('detaching');
      // detach: the VM runs on, the launcher waits for a key
      tmux('detach-client', '-s', name);
      await waitUntil(() => screen.includes('detached from tmux'), 30_000, notDone('the launcher to notice the detach'));
      assert.equal(clients(), '');
      assert.equal(status().code, 0, 'QMP says running after the detach');
      // Ctrl-C is a key there, not SIGINT: it attaches the terminal again and stops nothing
      type('\x03');
      await waitUntil(() => clients().includes(name), 30_000, notDone('the terminal to attach again'));
      // Ctrl-C once attached goes to tmux and the guest's shell
      type('\x03');
      await sleep(2000);
      assert.equal(status().code, 0, 'still running after Ctrl-C');
      assert.equal(launcherDone, false);

      progress('SIGTERM');
      // docker stop while tmux is attached: SIGTERM to the launcher, an ACPI shutdown, exit 0
      const launcherPid = s.launcherPid as number;
      const t0 = Date.now();
      process.kill(launcherPid, 'SIGTERM');
      const code = await exited;
      const elapsed = (Date.now() - t0) / 1000;
      t.diagnostic(`ACPI shutdown with tmux attached took ${elapsed.toFixed(1)} s`);
      assert.equal(code, 0, screen.slice(-2000));
      assert.match(screen, /the guest powered off/);
      assert.ok(elapsed < 120, `${elapsed} s`);
    } finally {
      if (!launcherDone) {
        launcher.kill('SIGKILL');
        await killLeftovers(runDir);
      }
    }
    // nothing left: QEMU, the tmux server and its windows' programs, the run folder, the VNC server
    assert.deepEqual(await processesMatching(`snabbvm-${name}`), []);
    assert.deepEqual(await processesMatching(runDir), []);
    assert.equal(existsSync(runDir), false);
    // (the port itself may be taken by another program on this shared machine by now: only ours must be gone)
    const vncAfter = await rfbConnect('127.0.0.1', vncPort).catch(() => undefined);
    assert.notEqual(vncAfter?.name, `QEMU (${name})`, 'our VNC server is gone');
  });

  test('headless: serial on stdout, no VNC with --vnc none, snabbvm stop forces a guest that ignores ACPI (exit 5)', { timeout: 180_000 }, async () => {
    const name = 'console-stop';
    const runDir = path.join(work, name);
    const vm = startLauncher(['--accel', 'tcg', '--net', 'none', '--web', 'none', '--vnc', 'none', '--console', 'auto', '--stop-timeout', '3', '--name', name, '--run-dir', runDir, cloudImagePath()]);
    try {
      await vm.waitFor(/is running/, 60_000);
      const qemuArgs = (await processesMatching(`snabbvm-${name}`)).join('\n');
      assert.doesNotMatch(qemuArgs, /-vnc/);
      assert.equal(existsSync(path.join(runDir, 'tmux.sock')), false, 'no terminal: no tmux session');
      assert.match(snabbvm(['status', '--run-dir', runDir]).stdout, /^VM console-stop: running/);
      // the guest is still in its firmware or boot loader: ACPI does nothing there
      const t0 = Date.now();
      const stop = snabbvm(['stop', '--run-dir', runDir]);
      const elapsed = (Date.now() - t0) / 1000;
      assert.match(stop.stderr, /stopping VM 'console-stop': ACPI powerdown, forced after 3 s/);
      assert.match(stop.stderr, /ignored the powerdown and was forced off/);
      assert.equal(stop.code, 5);
      assert.ok(elapsed >= 3 && elapsed < 30, `${elapsed} s`);
      assert.equal((await vm.exited).code, 5);
      assert.match(vm.stderr(), /a stop was asked for over the control socket/);
    } finally {
      vm.child.kill('SIGKILL');
    }
    const after = snabbvm(['status', '--json', '--run-dir', runDir]);
    assert.equal(after.code, 1);
    assert.equal(JSON.parse(after.stdout).state, 'stopped');
    assert.match(snabbvm(['console', '--run-dir', runDir]).stderr, /no VM 'console-stop' is running here/);
    assert.deepEqual(await processesMatching(runDir), []);
    assert.equal(existsSync(runDir), false);
  });
});
