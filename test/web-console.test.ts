/**
 * The web console in a real browser (Debian's chromium, driven by playwright-core) against a real TCG boot of the
 * Debian cloud image, with --web-password set:
 * - without the password nothing is served: not the page, the API, the power buttons, nor either websocket;
 *   with it, a foreign Origin is still refused;
 * - the browser logs in (a wrong password first), the status shows running, the VNC canvas shows the guest's
 *   console (not blank; a screenshot is kept in test-output/web-console/), typing into the serial terminal logs in;
 * - from the guest's shell (--net user): the host's loopback answers at 10.0.2.2 (VNC does), but no websocket VNC
 *   is there to skip the password with, and the web console answers the guest 401; the start-up warning says VNC
 *   on 127.0.0.1 has no password and the guest reaches it;
 * - the Shut down button powers the guest off over ACPI, and the launcher exits 0.
 * A second, VM-less test renders Snabb ports in the browser: their counters and packet-rate graphs.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { chromium, type Page } from 'playwright-core';
import { WebSocket } from 'ws';
import { cloudImagePath, repoRoot, whyNoVmTests } from './helpers/fixtures.js';
import { freePort, freeVncDisplay } from './helpers/free-port.js';
import { processesMatching, startLauncher } from './helpers/launcher.js';
import { progressLog, waitUntil } from './helpers/wait-until.js';
import { terminalText } from './helpers/xterm-text.js';
import type { SerialHub } from '../src/console/serial-hub.js';
import type { VmStatus } from '../src/console/vm-status.js';
import type { PortStatus } from '../src/snabb/port-status.js';
import type { QmpClient } from '../src/qemu/qmp-client.js';
import { listenWebConsole } from '../src/web/web-server.js';

const CHROMIUM = '/usr/bin/chromium';
const skip = whyNoVmTests() ?? (existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is not installed (apt-get install chromium): this test drives a real browser`);
const work = mkdtempSync(path.join(tmpdir(), 'snabbvm-web-'));
const outputDir = path.join(repoRoot, 'test-output', 'web-console');
after(() => rmSync(work, { recursive: true, force: true }));

const progress = progressLog('web console test');

/** How the server answers a websocket upgrade: 101 when it accepts, else the HTTP status it refused with. */
function upgradeStatus(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.on('open', () => {
      ws.terminate();
      resolve(101);
    });
    ws.on('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.on('error', reject);
  });
}

/** How many pixels of the VNC canvas are not black: a guest's text console has thousands. */
const litPixels = (page: Page) =>
  page.evaluate(() => {
    const canvas = document.querySelector<HTMLCanvasElement>('#screen canvas');
    if (!canvas || canvas.width === 0) return 0;
    const data = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
    let lit = 0;
    for (let i = 0; i < data.length; i += 4) if (data[i]! + data[i + 1]! + data[i + 2]! > 60) lit++;
    return lit;
  });

describe('web console', { skip }, () => {
  test('screen, serial terminal, status and the shutdown button in a real browser, behind a password', { timeout: 1_800_000 }, async () => {
    const name = 'web-console';
    const runDir = path.join(work, name);
    const [display, webPort] = [await freeVncDisplay(), await freePort(18006)];
    const userData = path.join(work, 'user-data');
    writeFileSync(userData, '#cloud-config\npassword: webpw42\nchpasswd:\n  expire: false\n');
    const vm = startLauncher([
      '--accel', 'tcg', '--net', 'user', '--console', 'stdio', '--stop-timeout', '120',
      '--vnc', String(display), '--vnc-listen', '127.0.0.1', '--web', String(webPort), '--web-password', 'open-sesame',
      '--name', name, '--run-dir', runDir, '-u', userData, cloudImagePath(),
    ]);
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    try {
      const [, url] = await vm.waitFor(/web console on (http:\/\/\S+)/, 300_000);
      assert.equal(url, `http://127.0.0.1:${webPort}/`, 'the web console binds where VNC does (--vnc-listen)');
      const base = `http://127.0.0.1:${webPort}`;
      const ws = `ws://127.0.0.1:${webPort}`;
      const bearer = { authorization: 'Bearer open-sesame' };
      progress('checking access without the password');

      // without the password: a login form, and nothing else
      const page401 = await fetch(`${base}/`);
      assert.equal(page401.status, 401);
      assert.match(await page401.text(), /name="password"/);
      for (const p of ['/app.js', '/api/status', '/vendor/novnc/core/rfb.js']) assert.equal((await fetch(base + p)).status, 401, p);
      assert.equal((await fetch(`${base}/api/power/shutdown`, { method: 'POST' })).status, 401);
      assert.equal(await upgradeStatus(`${ws}/ws/serial`, {}), 401, 'the serial websocket needs the token');
      assert.equal(await upgradeStatus(`${ws}/ws/vnc`, {}), 401, 'the VNC websocket needs the token');
      assert.equal((await fetch(`${base}/login`, { method: 'POST', body: new URLSearchParams({ password: 'wrong' }) })).status, 401);

      // with the password, but from another site's page: refused
      await waitUntil(async () => (await fetch(`${base}/api/status`, { headers: bearer })).ok, 120_000, 'the status API');
      assert.equal(await upgradeStatus(`${ws}/ws/serial`, { ...bearer, origin: 'http://evil.example' }), 403);
      assert.equal(await upgradeStatus(`${ws}/ws/vnc`, { ...bearer, origin: 'http://evil.example' }), 403);
      const crossSite = await fetch(`${base}/api/power/shutdown`, { method: 'POST', headers: { ...bearer, origin: 'http://evil.example' } });
      assert.equal(crossSite.status, 403);
      assert.equal(await upgradeStatus(`${ws}/ws/serial`, { ...bearer, origin: base }), 101, 'the same origin with the password is let in');

      // the browser: a wrong password, then the right one
      progress('logging in with the browser');
      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      const pageErrors: string[] = [];
      page.on('pageerror', (e) => pageErrors.push(e.message));
      await page.goto(base);
      await page.fill('#password', 'not-it');
      await page.click('button[type=submit]');
      await page.waitForSelector('#login-error');
      await page.fill('#password', 'open-sesame');
      await page.click('button[type=submit]');
      await page.waitForFunction(() => document.querySelector('#vm-state')?.textContent === 'running', undefined, { timeout: 60_000 });
      assert.equal(await page.textContent('#vm-name'), name);
      assert.equal(await page.textContent('#vm-accel'), 'tcg');

      // the screen: noVNC through QEMU's websocket shows the guest's console
      await waitUntil(async () => (await litPixels(page)) > 2000, 300_000, 'the guest console on the VNC canvas');
      progress(`the VNC canvas shows the guest (${await litPixels(page)} lit pixels)`);

      // the serial terminal: the boot reaches the end of cloud-init (which sets the password; logins before it are
      // refused by pam_nologin), then typing at the login prompt logs in
      let shown = '';
      const terminalShows = async (pattern: RegExp) => pattern.test((shown = await terminalText(page)));
      const withTerminal = (what: string) => () => `${what}; the terminal's last lines:\n${shown.trimEnd().split('\n').slice(-15).join('\n')}`;
      await waitUntil(() => terminalShows(/Cloud-init v\. \S+ finished/), 1_200_000, withTerminal('cloud-init to finish in the serial terminal'));
      progress('cloud-init finished in the browser terminal; logging in');
      await page.click('#terminal');
      await page.keyboard.press('Enter');
      await waitUntil(() => terminalShows(/login: *$/m), 60_000, withTerminal('the login prompt'));
      await page.keyboard.type('debian');
      await page.keyboard.press('Enter');
      await waitUntil(() => terminalShows(/Password: *$/m), 60_000, withTerminal('the password prompt'));
      await page.keyboard.type('webpw42');
      await page.keyboard.press('Enter');
      await waitUntil(() => terminalShows(/\$ *$/m), 120_000, withTerminal('the shell prompt'));
      await page.keyboard.type('echo web sum=$((40+2))');
      await page.keyboard.press('Enter');
      await waitUntil(() => terminalShows(/web sum=42/), 60_000, withTerminal("the command's output in the terminal"));

      // --net user: the guest reaches the host's loopback through 10.0.2.2 (QEMU's VNC on 127.0.0.1 answers it), but
      // there is no websocket VNC there to skip the web password with, and the web console wants the password
      progress('probing the host loopback from the guest');
      const [websocketPort, vncPort] = [5700 + display, 5900 + display];
      await page.keyboard.type(`for p in ${websocketPort} ${vncPort} ${webPort}; do (exec 3<>/dev/tcp/10.0.2.2/$p) 2>/dev/null && echo "probe $p open" || echo "probe $p closed"; done`);
      await page.keyboard.press('Enter');
      await page.keyboard.type(`exec 3<>/dev/tcp/10.0.2.2/${webPort}; printf 'GET /api/status HTTP/1.0\\r\\nHost: 10.0.2.2\\r\\n\\r\\n' >&3; head -1 <&3 | tr -d '\\r' | sed 's/^/probe web: /'; exec 3>&-`);
      await page.keyboard.press('Enter');
      await waitUntil(() => terminalShows(/probe web: HTTP\S* \d+/), 60_000, withTerminal('the probes from the guest'));
      assert.match(shown, new RegExp(`probe ${vncPort} open`), 'the guest reaches the host loopback through 10.0.2.2');
      assert.match(shown, new RegExp(`probe ${websocketPort} closed`), "no websocket VNC on the loopback for the guest to take");
      assert.match(shown, new RegExp(`probe ${webPort} open`));
      assert.match(shown, /probe web: HTTP\/1\.1 401 /, 'the web console asks the guest for the password');
      assert.ok(await page.isVisible('#logout button'), 'a Log out button, since there is a password');
      assert.match(vm.stderr(), new RegExp(`warning: no password on VNC on 127\\.0\\.0\\.1:${vncPort} \\(--vnc-password\\): anyone who reaches them, the guest included`), 'the start-up warning names VNC, open to the guest');
      assert.doesNotMatch(vm.stderr(), /no password on .*the web console/, 'the web console has one');

      mkdirSync(outputDir, { recursive: true });
      const screenshot = path.join(outputDir, 'web-console.png');
      await page.screenshot({ path: screenshot });
      progress(`screenshot: ${screenshot}`);
      assert.deepEqual(pageErrors, [], 'no script errors on the page');

      // the Shut down button: an ACPI powerdown the guest obeys; the launcher then exits 0
      progress('pressing Shut down');
      await page.click('#power-shutdown');
      await vm.waitFor(/reboot: Power down/, 300_000);
      const { code } = await vm.exited;
      assert.equal(code, 0, `the launcher exits 0 after the guest powered off\n${vm.stderr()}`);
      assert.match(vm.stderr(), /the guest powered off/);
      assert.equal((await fetch(`${base}/`).catch(() => undefined))?.status, undefined, 'the web console is gone with the launcher');
      assert.deepEqual(await processesMatching(runDir), [], 'nothing is left running');
    } finally {
      await browser.close();
      if (vm.child.exitCode === null) vm.child.kill('SIGTERM');
    }
  });
});

describe('web console page', { skip: existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is not installed (apt-get install chromium)` }, () => {
  test("the ports panel shows each Snabb port's counters and a packet-rate graph", { timeout: 120_000 }, async () => {
    // the status a launcher with one Snabb port reports, its counters growing by 1000 packets a poll
    let polls = 0;
    const port = (): PortStatus => {
      polls++;
      return {
        name: 'eth1', kind: 'pci', device: '0000:05:00.0', mac: '02:00:00:00:00:01', socket: '/run/x.sock', state: 'running', restarts: 1,
        counters: { rxPackets: polls * 600, txPackets: polls * 400, rxBytes: polls * 600_000, txBytes: polls * 400_000, rxDrops: 7 },
        updatedAt: new Date().toISOString(),
      };
    };
    const status = async () => ({ name: 'ports-vm', state: 'running', uptimeSec: 3725, addresses: ['10.0.0.5'], accel: 'kvm', ports: [port()] }) as unknown as VmStatus;
    const attach = (onOutput: (chunk: Buffer) => void) => (onOutput(Buffer.from('stub console\r\n')), { write: () => {}, detach: () => {} });
    const hub = { attach, closed: new Promise<void>(() => {}) } as unknown as SerialHub;
    const web = await listenWebConsole({ listen: '127.0.0.1', port: 0 });
    web.serve({ hub, status, qmp: {} as QmpClient, vncSocket: undefined });
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    try {
      const page = await browser.newPage();
      await page.goto(web.url);
      const row = 'tr[data-port="eth1"]';
      await page.waitForSelector(row);
      // three polls make two rate samples, enough for a line
      await page.waitForFunction(() => (window as unknown as { snabbvm: { status?: { ports: { counters: { rxPackets: number } }[] } } }).snabbvm.status!.ports[0]!.counters.rxPackets >= 1800, undefined, { timeout: 30_000 });
      const cells = await page.$$eval(`${row} td`, (tds) => tds.map((td) => td.textContent));
      assert.deepEqual(cells.slice(0, 3), ['eth1', '0000:05:00.0', 'running (restarts 1)']);
      assert.match(cells[3]!, /^\d+(\.\d)?k? \/ \d+(\.\d)?k?$/, 'packets in / out');
      assert.match(cells[4]!, /^\d+(\.\d)?M \/ \d+(\.\d)?M$/, 'bytes in / out');
      assert.equal(cells[5], '7', 'drops');
      const drawn = await page.$eval(`${row} canvas`, (c) => {
        const d = (c as HTMLCanvasElement).getContext('2d')!.getImageData(0, 0, (c as HTMLCanvasElement).width, (c as HTMLCanvasElement).height).data;
        let n = 0;
        for (let i = 3; i < d.length; i += 4) if (d[i]! > 0) n++;
        return n;
      });
      assert.ok(drawn > 50, `the rate graph is drawn (${drawn} pixels)`);
      assert.equal(await page.textContent('#vm-uptime'), '1h 2m 5s');
      assert.equal(await page.textContent('#vm-addresses'), '10.0.0.5');
      assert.match((await page.textContent('#screen-note'))!, /VNC is off/);
    } finally {
      await browser.close();
      await web.stop();
    }
  });
});
