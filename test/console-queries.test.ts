/**
 * Terminal queries on a serial console shared by many terminals, against a real TCG boot of a Debian 13 guest,
 * whose systemd asks the serial terminal for its size (ESC [ 6 n) when a getty starts.
 *
 * Four terminals share the console, each a real terminal emulator that answers queries: the launcher's own tmux
 * `vm` window (120x40); `snabbvm console` in a tmux of the test's (150x40), attached from the start; another
 * (90x25), and the web console's xterm.js in Chromium, both attached after the login prompt appeared, so the
 * recent output they are shown holds the getty's queries. Then:
 * - a login typed into the late console succeeds the first time, with no reply text at the prompt;
 * - a guest program that asks three times gets exactly one cursor report per question;
 * - a guest program that only listens while a fifth terminal attaches (its replay holds those questions) gets
 *   nothing.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';
import { cloudImagePath, whyNoVmTests } from './helpers/fixtures.js';
import { freePort } from './helpers/free-port.js';
import { launcherPath, processesMatching, startLauncher } from './helpers/launcher.js';
import { progressLog, waitUntil } from './helpers/wait-until.js';
import { terminalText } from './helpers/xterm-text.js';

const CHROMIUM = '/usr/bin/chromium';
const skip =
  whyNoVmTests() ??
  (spawnSync('tmux', ['-V']).error ? 'tmux is not installed (apt-get install tmux)' : undefined) ??
  (existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is not installed (apt-get install chromium): the web console is one of the terminals`);
const work = mkdtempSync(path.join(tmpdir(), 'snabbvm-queries-'));
const progress = progressLog('console queries test');

/** Guest programs, written by cloud-init: ask the terminal where the cursor is three times, or only listen. */
const USER_DATA = `#cloud-config
password: querypw
chpasswd:
  expire: false
write_files:
  - path: /usr/local/bin/read-terminal
    permissions: '0755'
    content: |
      #!/usr/bin/python3
      # read-terminal ask|listen: in raw mode, print (as hex) what the terminal sends in 3 windows of 3 s,
      # after writing a cursor position query at the start of each window when asked to
      import os, select, sys, termios, time, tty
      ask = sys.argv[1] == 'ask'
      fd = sys.stdin.fileno()
      old = termios.tcgetattr(fd)
      tty.setraw(fd)
      got = []
      try:
          for _ in range(3):
              if ask:
                  os.write(1, b'\\x1b[6n')
              data, end = b'', time.time() + 3
              while time.time() < end:
                  if select.select([fd], [], [], 0.1)[0]:
                      data += os.read(fd, 256)
              got.append(data.hex() or '-')
      finally:
          termios.tcsetattr(fd, termios.TCSADRAIN, old)
      print('\\r\\nREAD', sys.argv[1], ' '.join(got), 'END')
`;

/** The test's own terminals: `snabbvm console` in windows of a tmux server of the test's, each a real terminal. */
function testTerminals(runDir: string) {
  const socket = path.join(work, 'test-tmux.sock');
  const tmux = (...a: string[]) => execFileSync('tmux', ['-S', socket, '-f', '/dev/null', ...a], { encoding: 'utf8', env: { ...process.env, TMUX: '' } });
  const consoleCommand = `${process.execPath} ${launcherPath} console --escape none --run-dir ${runDir}`;
  let opened = 0;
  return {
    open(name: string, columns: number, rows: number) {
      if (opened++ === 0) tmux('new-session', '-d', '-s', 'q', '-n', name, '-x', String(columns), '-y', String(rows), consoleCommand);
      else tmux('new-window', '-d', '-t', 'q', '-n', name, consoleCommand);
      // each window its own size: the one a terminal of that size would report
      tmux('resize-window', '-t', `q:${name}`, '-x', String(columns), '-y', String(rows));
      assert.equal(tmux('display-message', '-p', '-t', `q:${name}`, '#{window_width}x#{window_height}').trim(), `${columns}x${rows}`);
    },
    type: (name: string, keys: string) => tmux('send-keys', '-t', `q:${name}`, '-l', keys),
    enter: (name: string) => tmux('send-keys', '-t', `q:${name}`, 'Enter'),
    screen: (name: string) => tmux('capture-pane', '-p', '-J', '-S', '-200', '-t', `q:${name}`),
    kill: () => spawnSync('tmux', ['-S', socket, 'kill-server']),
  };
}

/** The cursor position reports in what the guest program read (hex), one list per question. */
function cursorReports(hex: string): string[] {
  if (hex === '-') return [];
  return [...Buffer.from(hex, 'hex').toString('latin1').matchAll(/\x1b\[(\d+;\d+)R/g)].map((m) => m[1]!);
}

const terminals = testTerminals(path.join(work, 'queries'));
after(async () => {
  terminals.kill();
  for (const line of await processesMatching(path.join(work, 'queries'))) {
    try {
      process.kill(Number(line.split(':')[0]), 'SIGKILL');
    } catch {}
  }
  rmSync(work, { recursive: true, force: true });
});

describe('terminal queries on a shared serial console (Debian 13 guest)', { skip }, () => {
  test('one answer per live query, none for replayed ones, and a first login that works with four terminals attached', { timeout: 1_800_000 }, async (t) => {
    const name = 'queries';
    const runDir = path.join(work, name);
    const userData = path.join(work, 'user-data');
    writeFileSync(userData, USER_DATA);
    const webPort = await freePort(18106);
    const image = cloudImagePath('trixie');
    const vm = startLauncher([
      '--accel', 'tcg', '--net', 'none', '--console', 'tmux', '--vnc', 'none', '--web', String(webPort), '--web-listen', '127.0.0.1',
      '--stop-timeout', '120', '--name', name, '--run-dir', runDir, '-u', userData, image,
    ]);
    const serialLog = () => (existsSync(path.join(runDir, 'serial.log')) ? readFileSync(path.join(runDir, 'serial.log'), 'latin1') : '');
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    try {
      await vm.waitFor(/is running/, 120_000);
      // attached from the start: it sees the getty's questions live
      terminals.open('early', 150, 40);
      progress('VM running, the early console attached; waiting for cloud-init');
      await waitUntil(() => /Cloud-init v\. \S+ finished/.test(serialLog()), 1_200_000, () => `cloud-init to finish\n${serialLog().slice(-2000)}`);
      await waitUntil(() => /login: /.test(serialLog()), 120_000, () => `the login prompt\n${serialLog().slice(-1000)}`);
      const gettyQueries = serialLog().split('\x1b[6n').length - 1;
      t.diagnostic(`the Debian 13 guest wrote ${gettyQueries} cursor position queries on the serial console before the prompt`);
      assert.ok(gettyQueries >= 2, "Debian 13's getty asks the serial terminal for its size");

      // late terminals: the replay they get held those questions
      terminals.open('late', 90, 25);
      const page = await browser.newPage();
      await page.goto(`http://127.0.0.1:${webPort}/`);
      await waitUntil(async () => /login:/.test(await terminalText(page)), 60_000, 'the replay in the web console');
      await sleep(3000); // time for any terminal to answer what it was shown
      progress('late console and web console attached; logging in on the late console');

      const beforeLogin = serialLog().length;
      terminals.enter('late');
      await waitUntil(() => /login: /.test(serialLog().slice(beforeLogin)), 60_000, () => `a fresh login prompt\n${terminals.screen('late')}`);
      terminals.type('late', 'debian');
      terminals.enter('late');
      await waitUntil(() => /Password: *$/m.test(terminals.screen('late')), 60_000, () => `the password prompt\n${terminals.screen('late')}`);
      terminals.type('late', 'querypw');
      terminals.enter('late');
      await waitUntil(() => /\$ *$/m.test(terminals.screen('late')), 120_000, () => `the shell prompt\n${terminals.screen('late')}\n--- serial:\n${serialLog().slice(beforeLogin)}`);
      const login = serialLog().slice(beforeLogin);
      assert.doesNotMatch(login, /Login incorrect/);
      assert.match(login, /login: debian\r*\n/, 'the login name arrived as typed, with no reply text before it');

      progress('logged in; the guest asks three times');
      terminals.type('late', 'read-terminal ask');
      terminals.enter('late');
      const asked = await waitUntil(() => /READ ask (.*) END/.exec(serialLog()) ?? undefined, 60_000, () => `read-terminal ask\n${terminals.screen('late')}`);
      const perQuestion = asked[1]!.split(' ').map(cursorReports);
      t.diagnostic(`the guest read, per question: ${JSON.stringify(asked[1])} = ${JSON.stringify(perQuestion)}`);
      assert.equal(perQuestion.length, 3);
      for (const reports of perQuestion) assert.equal(reports.length, 1, `exactly one answer per question: ${JSON.stringify(perQuestion)}`);
      // the terminal that typed last (the 90x25 one) answered: one consistent size
      for (const [report] of perQuestion) {
        const [row, column] = report!.split(';').map(Number);
        assert.ok(row! <= 25 && column! <= 90, `a report from the 90x25 terminal: ${report}`);
      }

      progress('the guest listens while a fifth terminal attaches');
      terminals.type('late', 'read-terminal listen');
      terminals.enter('late');
      await sleep(1000);
      terminals.open('latest', 100, 30); // its replay holds the three questions just asked
      const listened = await waitUntil(() => /READ listen (.*) END/.exec(serialLog()) ?? undefined, 60_000, () => `read-terminal listen\n${terminals.screen('late')}`);
      t.diagnostic(`the guest read while the fifth terminal attached: ${JSON.stringify(listened[1])}`);
      assert.equal(listened[1], '- - -', 'no answers to replayed questions');
      assert.match(terminals.screen('latest'), /READ ask/, 'the fifth terminal was shown the recent output');
    } finally {
      await browser.close();
      if (vm.child.exitCode === null) vm.child.kill('SIGTERM');
      await vm.exited;
    }
    assert.deepEqual(await processesMatching(`snabbvm-${name}`), []);
  });
});
