import assert from 'node:assert/strict';
import { test } from 'node:test';
import { planConsoleLayout } from './start-consoles.js';
import { planTmuxAttach, planTmuxSession, tmuxEnv } from './tmux-session.js';

const plan = {
  session: 'vm1',
  socket: '/run/snabbvm/vm1/tmux.sock',
  self: ['/usr/bin/node', '/app/main.js'],
  runDir: '/run/snabbvm/vm1',
  vnc: '0.0.0.0:5901',
  ports: [{ name: 'eth1', log: '/run/snabbvm/vm1/snabb/eth1.log' }],
};

/** the tmux commands, split on the ';' arguments */
const commandsOf = (argv: string[]) =>
  argv.slice(4).reduce<string[][]>((acc, a) => (a === ';' ? [...acc, []] : [...acc.slice(0, -1), [...acc.at(-1)!, a]]), [[]]);

test("the session runs on the VM's own tmux server, with no user config", () => {
  const argv = planTmuxSession(plan);
  assert.deepEqual(argv.slice(0, 4), ['-S', '/run/snabbvm/vm1/tmux.sock', '-f', '/dev/null']);
});

test('windows: vm (serial console without an escape key), monitor, one per Snabb port; vm selected', () => {
  const commands = commandsOf(planTmuxSession(plan));
  assert.deepEqual(commands[0], ['new-session', '-d', '-s', 'vm1', '-n', 'vm', '-x', '120', '-y', '40', '/usr/bin/node', '/app/main.js', 'console', '--escape', 'none', '--run-dir', '/run/snabbvm/vm1']);
  const windows = commands.filter((c) => c[0] === 'new-window');
  assert.deepEqual(windows, [
    ['new-window', '-d', '-n', 'monitor', '/usr/bin/node', '/app/main.js', 'monitor', '--keep-open', '--run-dir', '/run/snabbvm/vm1'],
    ['new-window', '-d', '-n', 'eth1', 'tail', '-n', '+1', '-F', '/run/snabbvm/vm1/snabb/eth1.log'],
  ]);
  assert.deepEqual(commands.at(-1), ['select-window', '-t', 'vm1:vm']);
  assert.ok(commands.some((c) => c.join(' ') === 'bind-key T split-window -v -l 12 /usr/bin/node /app/main.js status --watch --run-dir /run/snabbvm/vm1'));
});

test('the status bar shows the name, the state (coloured) and the addresses and VNC', () => {
  const commands = commandsOf(planTmuxSession(plan));
  const option = (name: string) => commands.find((c) => c[0] === 'set-option' && c.includes(name))?.at(-1);
  assert.equal(option('status-left'), '#[bold] #{session_name} #[default]');
  const right = option('status-right')!;
  assert.match(right, /#\{@snabbvm_state\}/);
  assert.match(right, /#\{==:#\{@snabbvm_state\},running\}/);
  assert.match(right, /#\{@snabbvm_addresses\}/);
  assert.match(right, /VNC 0\.0\.0\.0:5901/);
  assert.equal(option('@snabbvm_state'), 'starting');
  assert.doesNotMatch(planTmuxSession({ ...plan, vnc: undefined } as never).join(' '), /VNC/);
});

test('attach, and tmux never thinks it is nested', () => {
  assert.deepEqual(planTmuxAttach(plan), ['-S', '/run/snabbvm/vm1/tmux.sock', 'attach-session', '-t', 'vm1']);
  assert.deepEqual(tmuxEnv({ TMUX: '/tmp/x,1,0', TMUX_PANE: '%1', TERM: 'xterm' }), { TERM: 'xterm' });
});

test('console layout: tmux on a terminal, serial on stdio without one', () => {
  const tmuxOnTerminal = { tmux: true, attachTerminal: true, streamSerial: false, forwardStdin: false };
  const stdio = { tmux: false, attachTerminal: false, streamSerial: true, forwardStdin: true };
  assert.deepEqual(planConsoleLayout('auto', true, true), tmuxOnTerminal);
  assert.deepEqual(planConsoleLayout('auto', false, true), stdio);
  assert.deepEqual(planConsoleLayout('auto', true, false), stdio, 'no tmux installed: serial on the terminal');
  assert.deepEqual(planConsoleLayout('tmux', false, true), { tmux: true, attachTerminal: false, streamSerial: true, forwardStdin: true }, 'a session for snabbvm attach, and docker logs still shows the boot');
  assert.deepEqual(planConsoleLayout('stdio', true, true), stdio);
  assert.deepEqual(planConsoleLayout('none', true, true), { tmux: false, attachTerminal: false, streamSerial: false, forwardStdin: false });
});

test("a VM name tmux can't hold as is ('web.1'): the session starts and every -t finds it (real tmux)", async (t) => {
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { runProgram } = await import('../process/run-program.js');
  const { startTmuxSession, tmuxSessionName } = await import('./tmux-session.js');
  if (!(await runProgram(['tmux', '-V']).then(() => true, () => false))) return t.skip('tmux is not installed (apt-get install tmux)');
  assert.equal(tmuxSessionName('web.1'), 'web_1');
  assert.equal(tmuxSessionName('vm-1_a'), 'vm-1_a');
  const dir = mkdtempSync(`${tmpdir()}/snabbvm-tmux-`);
  const session = await startTmuxSession({ session: tmuxSessionName('web.1'), socket: `${dir}/tmux.sock`, self: ['sh', '-c', 'sleep 30'], runDir: dir, ports: [] });
  try {
    assert.equal(await session.isAlive(), true);
    const attach = planTmuxAttach({ socket: `${dir}/tmux.sock`, session: tmuxSessionName('web.1') });
    const target = attach[attach.indexOf('-t') + 1]!;
    await runProgram(['tmux', '-S', `${dir}/tmux.sock`, 'has-session', '-t', target]);
    const listed = (await runProgram(['tmux', '-S', `${dir}/tmux.sock`, 'list-sessions', '-F', '#{session_name}'])).stdout.trim();
    assert.equal(listed, target);
  } finally {
    await session.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
