/**
 * The Docker image, built from the repo's Dockerfile and run exactly as the README says:
 *
 *   docker run --name vm1 --rm --privileged -i -t -v $PWD:/u snabbvm -u user_data.txt <image or URL> [port ...]
 *
 * detached (-d), with the fixture cloud image and a --share of a folder in /u. One boot checks the cloud-init marker
 * in `docker logs`, the shared folder (virtiofs, mounted at /mnt/data by cloud-init: a file each way, and symlinks
 * the guest makes that must not lead to the file beside the folder), SSH through
 * nat at the container's IP, VNC at the container's IP:5901, the web console at :8006 (page, libraries, the VNC relay),
 * `snabbvm status` via `docker exec`, the health check,
 * and `docker stop` (ACPI, inside the grace period, container gone). A second boot takes the image from a URL
 * served on docker0 and has two vhost-user ports on a Snabb soft switch on the host: the guest pings from one to
 * the other through it. The image carries this machine's Snabb (scripts/build-snabb.sh); without it, the tests that
 * need Snabb are skipped with the reason, and the URL boot runs without ports under a name that says so.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { readSnabbCounters } from '../src/snabb/port-status.js';
import { cloudImagePath, whyNoVmTests } from './helpers/fixtures.js';
import {
  bridgeAddress,
  buildBaseImage,
  buildSnabbvmImage,
  containerIp,
  describePrivilegedWorkaround,
  docker,
  DOCKER,
  flattenTerminalOutput,
  HOST_SNABB,
  HOST_SNABB_VERSION,
  IMAGE_BUDGET_MB,
  imageSizeMb,
  makeUserFolder,
  ORIGINAL_IMAGE_MB,
  removeContainer,
  setUpDocker,
  whyNoDockerTests,
} from './helpers/docker-image.js';

const skip = whyNoDockerTests() ?? whyNoVmTests();
if (skip) console.log(`# SKIPPING the Docker image tests: ${skip}`);
const IMAGE = 'snabbvm:test';
const IMAGE_NO_SNABB = 'snabbvm:test-no-snabb';
/** a TCG boot to cloud-init's end on a busy 2-core machine */
const BOOT_MS = 900_000;
/** docker stop's grace period: the launcher's --stop-timeout (60 s) plus time to clean up */
const GRACE_S = 90;
const noHostSnabb = existsSync(HOST_SNABB) && existsSync(HOST_SNABB_VERSION) ? undefined : `${HOST_SNABB} or ${HOST_SNABB_VERSION} is missing: run scripts/build-snabb.sh`;
const hostSnabb = noHostSnabb === undefined;
if (!skip && noHostSnabb) console.log(`# SKIPPING the Docker tests with Snabb: ${noHostSnabb}`);

const userData = (marker: string, extra = '') => `#cloud-config
runcmd:
  - echo "${marker} $(hostname) END" > /dev/ttyS0
${extra}`;

/**
 * The shared folder's checks, as more runcmd entries: a host file read, a guest file written, and two symlinks
 * the guest makes towards the file beside the folder (relative, and by its path in the container).
 */
const SHARE_RUNCMD = `  - echo "SHARE-CHECK fs=$(grep ' /mnt/data ' /proc/mounts | cut -d' ' -f3) host-file=$(cat /mnt/data/from-host.txt) END" > /dev/ttyS0
  - echo written-by-the-guest > /mnt/data/from-guest.txt
  - ln -s ../secret.txt /mnt/data/up-link; ln -s /u/secret.txt /mnt/data/abs-link
  - echo "SHARE-ESCAPE rel=$(cat /mnt/data/up-link 2>/dev/null || echo none) abs=$(cat /mnt/data/abs-link 2>/dev/null || echo none) END" > /dev/ttyS0
`;

/** The first message a websocket gets, as text. */
function firstMessage(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, 'binary');
    ws.once('message', (data: Buffer) => {
      resolve(data.toString());
      ws.terminate();
    });
    ws.once('error', reject);
  });
}

/** A detached container run as the README says, with its `docker logs -f` and `docker wait` running from the start. */
interface Detached {
  name: string;
  logs: () => string;
  /** the container's exit code, from `docker wait` */
  exitCode: Promise<number>;
  followers: ChildProcess[];
}

async function runDetached(name: string, dockerArgs: string[], launcherArgs: string[]): Promise<Detached> {
  await removeContainer(name);
  const argv = ['run', '-d', '--name', name, '--rm', '--privileged', '-i', '-t', ...dockerArgs, IMAGE, ...launcherArgs];
  console.log(`# ${DOCKER} ${argv.join(' ')}`);
  await docker(argv);
  let text = '';
  const logs = spawn(DOCKER, ['logs', '-f', name], { stdio: ['ignore', 'pipe', 'pipe'] });
  logs.stdout.on('data', (b: Buffer) => (text += b.toString('latin1')));
  logs.stderr.on('data', (b: Buffer) => (text += b.toString('latin1')));
  const wait = spawn(DOCKER, ['wait', name], { stdio: ['ignore', 'pipe', 'ignore'] });
  let waitOut = '';
  wait.stdout.on('data', (b: Buffer) => (waitOut += b));
  const exitCode = new Promise<number>((resolve) => wait.on('close', () => resolve(Number(waitOut.trim()))));
  return { name, logs: () => text, exitCode, followers: [logs, wait] };
}

async function waitForLog(run: Detached, pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = flattenTerminalOutput(run.logs()).match(pattern);
    if (m) return m;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern} in docker logs ${run.name}; the end of them:\n${flattenTerminalOutput(run.logs()).slice(-3000)}`);
    await sleep(2000);
  }
}

/** The first bytes a TCP server sends, or the error. */
function banner(host: string, port: number, bytes: number, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port });
    let got = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no banner from ${host}:${port} in ${timeoutMs} ms (got ${JSON.stringify(got.toString())})`));
    }, timeoutMs);
    socket.on('data', (b: Buffer) => {
      got = Buffer.concat([got, b]);
      if (got.length >= bytes) {
        clearTimeout(timer);
        socket.destroy();
        resolve(got.subarray(0, bytes).toString('latin1'));
      }
    });
    socket.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

async function retry<T>(what: string, fn: () => Promise<T>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`${what}: ${(err as Error).message}`);
      await sleep(3000);
    }
  }
}

async function containerExists(name: string): Promise<boolean> {
  return docker(['inspect', name]).then(
    () => true,
    () => false,
  );
}

/** docker stop with a grace period; checks the ACPI shutdown, the exit code and that --rm removed the container. */
async function stopAndCheck(run: Detached): Promise<void> {
  const t0 = Date.now();
  await docker(['stop', '-t', String(GRACE_S), run.name], { timeoutMs: (GRACE_S + 60) * 1000 });
  const elapsed = (Date.now() - t0) / 1000;
  const code = await run.exitCode;
  await Promise.all(run.followers.map((f) => new Promise((r) => (f.exitCode !== null ? r(null) : f.on('close', r)))));
  const logs = flattenTerminalOutput(run.logs());
  console.log(`# docker stop: ${elapsed.toFixed(1)} s, exit code ${code}`);
  assert.match(logs, /SIGTERM: shutting the VM down \(ACPI powerdown/, 'the launcher got docker stop\'s SIGTERM');
  assert.match(logs, /the guest powered off/, `a clean ACPI shutdown; the end of docker logs:\n${logs.slice(-2000)}`);
  assert.equal(code, 0, 'exit code 0: the guest powered off');
  assert.ok(elapsed < GRACE_S, `stopped inside the grace period (${elapsed} s)`);
  for (let i = 0; i < 20 && (await containerExists(run.name)); i++) await sleep(500);
  assert.equal(await containerExists(run.name), false, '--rm removed the container');
}

describe('the Docker image, as users run it', { skip }, () => {
  const work = mkdtempSync(path.join(tmpdir(), 'snabbvm-docker-test-'));
  const cleanups: (() => Promise<void> | void)[] = [];
  let buildOk = false;
  let baseImage = '';

  before(async () => {
    const setup = setUpDocker();
    console.log(`# docker engine ${setup.serverVersion}; --privileged workaround: ${describePrivilegedWorkaround(setup)}`);
    baseImage = buildBaseImage();
    const t0 = Date.now();
    await buildSnabbvmImage({ tag: IMAGE, baseImage, snabb: hostSnabb ? 'local' : 'none' });
    console.log(`# built ${IMAGE} from the repo's Dockerfile on ${baseImage}, Snabb: ${hostSnabb ? `local (${HOST_SNABB})` : 'none (not installed here)'}, in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    buildOk = true;
  });

  after(async () => {
    for (const c of cleanups.reverse()) await c();
    rmSync(work, { recursive: true, force: true });
  });

  test('the image: Debian 13, QEMU 10, smaller than the original, with the documented entrypoint, ports, signal, health check and labels', async () => {
    assert.ok(buildOk);
    const size = await imageSizeMb(IMAGE);
    console.log(`# image size: ${size.toFixed(1)} MB (the original: ${ORIGINAL_IMAGE_MB} MB, ratio ${(size / ORIGINAL_IMAGE_MB).toFixed(2)}; budget ${IMAGE_BUDGET_MB} MB)`);
    assert.ok(size < ORIGINAL_IMAGE_MB, `${size} MB`);
    assert.ok(size <= IMAGE_BUDGET_MB, `${size.toFixed(1)} MB is over the ${IMAGE_BUDGET_MB} MB budget (with OVMF and virtiofsd)`);
    const [config] = JSON.parse(await docker(['image', 'inspect', IMAGE])) as { Config: Record<string, any> }[];
    const c = config!.Config;
    assert.deepEqual(c.Entrypoint, ['/usr/bin/tini', '--', 'snabbvm']);
    assert.deepEqual(c.Cmd, ['--help']);
    assert.ok('5901/tcp' in c.ExposedPorts, 'EXPOSE 5901');
    assert.equal(c.StopSignal, 'SIGTERM');
    assert.deepEqual(c.Healthcheck.Test, ['CMD', 'snabbvm', 'status']);
    for (const label of ['source', 'version', 'licenses', 'revision']) assert.ok(c.Labels[`org.opencontainers.image.${label}`], `OCI label ${label}`);
    const help = await docker(['run', '--rm', IMAGE]);
    assert.match(help, /Usage: snabbvm \[options\]/);
    const versions = await docker(['run', '--rm', '--entrypoint', 'sh', IMAGE, '-c', '. /etc/os-release; echo "$VERSION_ID"; qemu-system-x86_64 -version | head -1; command -v snabb || echo no-snabb; ls -A /run/snabb 2>/dev/null | wc -l']);
    const [debian, qemu, snabb, snabbShm] = versions.trim().split('\n');
    // the build's `snabb --help` check leaves Snabb's shared memory (10 MB), which the image must not keep
    assert.equal(snabbShm, '0', 'nothing in /run/snabb');
    assert.equal(debian, '13');
    assert.match(qemu!, /QEMU emulator version (\d+)/);
    assert.ok(Number(qemu!.match(/version (\d+)/)![1]) >= 10, qemu);
    assert.equal(snabb, hostSnabb ? '/usr/local/bin/snabb' : 'no-snabb');
  });

  test("the image's Snabb is this machine's patched build, and its label says which", { skip: noHostSnabb }, async () => {
    assert.ok(buildOk);
    const built = readFileSync(HOST_SNABB_VERSION, 'utf8').trim();
    assert.match(built, /^v2024\.06\+snabbvm\.[0-9a-f]{12}$/, 'scripts/build-snabb.sh wrote the release tag and the patch hash');
    const [config] = JSON.parse(await docker(['image', 'inspect', IMAGE])) as { Config: { Labels: Record<string, string> } }[];
    const labels = config!.Config.Labels;
    const inImage = (await docker(['run', '--rm', '--entrypoint', 'sh', IMAGE, '-c', 'cat /usr/local/bin/snabb.version; sha256sum </usr/local/bin/snabb'])).trim().split('\n');
    const hostHash = createHash('sha256').update(readFileSync(HOST_SNABB)).digest('hex');
    console.log(`# labels io.snabbvm.snabb=${JSON.stringify(labels['io.snabbvm.snabb'])}, io.snabbvm.snabb.version=${JSON.stringify(labels['io.snabbvm.snabb.version'])}; /usr/local/bin/snabb.version in the image: ${inImage[0]}`);
    assert.equal(labels['io.snabbvm.snabb.version'], built);
    assert.equal(labels['io.snabbvm.snabb'], 'local v2024.06');
    assert.equal(inImage[0], built);
    assert.equal(inImage[1]!.slice(0, 64), hostHash, 'the very binary built here');
  });

  test('the README command, detached: cloud-init in docker logs, SSH through nat and VNC at the container IP, status, health, docker stop', { timeout: BOOT_MS + 600_000 }, async () => {
    assert.ok(buildOk);
    const u = makeUserFolder('snabbvm-docker-u-', { 'debian-12.qcow2': cloudImagePath() });
    cleanups.push(() => rmSync(u, { recursive: true, force: true }));
    // a shared folder (virtiofs: the image has virtiofsd), and beside it a file the guest must not reach
    mkdirSync(path.join(u, 'shared'));
    writeFileSync(path.join(u, 'shared', 'from-host.txt'), 'written-by-the-host\n');
    writeFileSync(path.join(u, 'secret.txt'), 'SNABBVM-SECRET-OUTSIDE-THE-SHARE\n');
    writeFileSync(path.join(u, 'user_data.txt'), userData('SNABBVM-DOCKER-MARKER', SHARE_RUNCMD));
    const name = 'docker-e2e';
    // TCG: /dev/kvm exists on this machine but KVM does not work (platform facts)
    const run = await runDetached(name, ['-v', `${u}:/u`, '-e', 'SNABBVM_ACCEL=tcg'], ['-u', 'user_data.txt', '--share', 'shared:data', 'debian-12.qcow2']);
    cleanups.push(() => removeContainer(name));
    await waitForLog(run, /is running \(tcg/, 120_000);
    assert.match(flattenTerminalOutput(run.logs()), /shared folders by virtiofs \(\/usr\/libexec\/virtiofsd, virtiofsd 1\.[^)]*\): \/u\/shared at \/mnt\/data/);
    const marker = await waitForLog(run, /SNABBVM-DOCKER-MARKER (\S+) END/, BOOT_MS);
    console.log(`# cloud-init marker in docker logs: ${marker[0]}`);
    assert.equal(marker[1], 'snabbvm', 'the hostname cloud-init set: the VM name');

    const share = await waitForLog(run, /SHARE-CHECK fs=(\S*) host-file=(\S*) END/, 120_000);
    const escape = await waitForLog(run, /SHARE-ESCAPE rel=(\S*) abs=(\S*) END/, 120_000);
    console.log(`# ${share[0]}; ${escape[0]}`);
    assert.equal(share[1], 'virtiofs', 'mounted at /mnt/data by cloud-init, no user action');
    assert.equal(share[2], 'written-by-the-host', 'a host file is seen in the guest');
    assert.equal(readFileSync(path.join(u, 'shared', 'from-guest.txt'), 'utf8'), 'written-by-the-guest\n', 'a guest file is seen on the host');
    assert.deepEqual([escape[1], escape[2]], ['none', 'none'], "the guest's symlinks lead to the guest's own files, never out of the folder");
    assert.ok(!flattenTerminalOutput(run.logs()).includes('SNABBVM-SECRET-OUTSIDE'), 'the file beside the share never reached the guest');

    const ip = await containerIp(name);
    // nat: every port of the container's address but the consoles' goes to the VM, so :22 is the guest's sshd
    const ssh = await retry('SSH banner through nat', () => banner(ip, 22, 8), 180_000);
    assert.equal(ssh, 'SSH-2.0-', `the guest's sshd answers at ${ip}:22`);
    const vnc = await banner(ip, 5901, 12);
    assert.equal(vnc, 'RFB 003.008\n', `VNC at ${ip}:5901`);
    console.log(`# at the container's IP ${ip}: :22 -> ${JSON.stringify(ssh)}, :5901 -> ${JSON.stringify(vnc)}`);

    // the web console, served from the image: the page, its libraries, and the screen through the relay to QEMU's VNC on a unix socket
    const page = await fetch(`http://${ip}:8006/`);
    assert.equal(page.status, 200, `the web console at ${ip}:8006`);
    assert.match(await page.text(), /src="\/app.js"/);
    for (const asset of ['/app.js', '/vendor/novnc/core/rfb.js', '/vendor/xterm/lib/xterm.mjs']) {
      assert.equal((await fetch(`http://${ip}:8006${asset}`)).status, 200, asset);
    }
    const screen = await firstMessage(`ws://${ip}:8006/ws/vnc`);
    assert.equal(screen, 'RFB 003.008\n', 'the web console relays the VNC screen');
    console.log(`# web console at ${ip}:8006: page, noVNC and xterm.js served; /ws/vnc -> ${JSON.stringify(screen)}`);

    const status = await docker(['exec', name, 'snabbvm', 'status']);
    assert.match(status, /: running/, status);
    const health = await retry(
      'health check',
      async () => {
        const h = (await docker(['inspect', '--format', '{{.State.Health.Status}}', name])).trim();
        if (h !== 'healthy') throw new Error(`health is ${h}`);
        return h;
      },
      240_000,
    );
    console.log(`# docker exec ${name} snabbvm status: ${status.split('\n')[0]}; health: ${health}`);

    await stopAndCheck(run);
  });

  // One boot from a URL: with two vhost-user ports through the host's Snabb when it is here, else without ports,
  // under a name that says so (and the Snabb one skipped with the reason).
  const bootFromUrl = async (withSnabb: boolean) => {
    assert.ok(buildOk);
    const image = cloudImagePath();
    // the test's own HTTP server, on the bridge address containers reach the host at
    const server: Server = createServer((req, res) => {
      if (req.url !== '/debian-12.qcow2') return void res.writeHead(404).end();
      res.writeHead(200, { 'content-length': statSync(image).size, 'content-type': 'application/octet-stream' });
      createReadStream(image).pipe(res);
    });
    const host = bridgeAddress();
    await new Promise<void>((resolve) => server.listen(0, host, resolve));
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const url = `http://${host}:${(server.address() as { port: number }).port}/debian-12.qcow2`;

    const u = makeUserFolder('snabbvm-docker-url-', {});
    cleanups.push(() => rmSync(u, { recursive: true, force: true }));
    const dockerArgs = ['-v', `${u}:/u`, '-e', 'SNABBVM_ACCEL=tcg'];
    const ports: string[] = [];
    let extra = '';
    let snabb: ChildProcess | undefined;
    const sw = path.join(work, 'switch');
    const snabbLog = path.join(work, 'snabb.log');
    if (withSnabb) {
      // the host's Snabb is the vhost-user client of the sockets QEMU serves in the container, in a shared folder
      mkdirSync(sw);
      // Two switch ports, both on this VM: eth1, and eth2, which the guest moves into a network namespace of its own,
      // so a ping from eth1 to eth2's address can only go through the host's Snabb, out and back. (A soft switch
      // needs two ports anyway: Snabb's flooding bridge fails on the first packet when it has nowhere to send it.)
      writeFileSync(
        path.join(sw, 'ports.lua'),
        'return {\n  { port_id = "vm", mac_address = "52:54:00:77:00:01" },\n  { port_id = "peer", mac_address = "52:54:00:77:00:02" },\n}\n',
      );
      dockerArgs.push('-v', `${sw}:${sw}`);
      ports.push(`vhost-user:${sw}/vm.sock,mac=52:54:00:77:00:01,ip=10.77.1.1/24`, `vhost-user:${sw}/peer.sock,mac=52:54:00:77:00:02`);
      extra = [
        'ip netns add peer',
        'ip link set eth2 netns peer',
        'ip -n peer addr add 10.77.1.2/24 dev eth2',
        'ip -n peer link set eth2 up',
        'ip -br addr show eth1 > /dev/ttyS0',
        'ping -c 5 -W 3 -I eth1 10.77.1.2 > /run/ping.txt 2>&1; echo "SNABBVM-PING $(grep -o "[0-9]* received" /run/ping.txt) END" > /dev/ttyS0',
      ]
        .map((c) => `  - ${JSON.stringify(c)}\n`)
        .join('');
    }
    writeFileSync(path.join(u, 'user_data.txt'), userData('SNABBVM-URL-MARKER', extra));
    const name = 'docker-url';
    const run = await runDetached(name, dockerArgs, ['-u', 'user_data.txt', url, ...ports]);
    cleanups.push(() => removeContainer(name));
    if (withSnabb) {
      await retry('QEMU serves the vhost-user sockets', async () => void ['vm.sock', 'peer.sock'].forEach((f) => statSync(path.join(sw, f))), 300_000);
      const log = openSync(snabbLog, 'w');
      snabb = spawn(HOST_SNABB, ['snabbnfv', 'traffic', '-k', '10', '-D', '0', 'soft', path.join(sw, 'ports.lua'), `${sw}/%s.sock`], { cwd: sw, stdio: ['ignore', log, log] });
      closeSync(log);
      cleanups.push(() => void snabb?.kill('SIGTERM'));
    }
    /** the host's Snabb is still running; its log has `want` */
    const checkSnabb = (want?: RegExp) => {
      const text = readFileSync(snabbLog, 'utf8');
      if (snabb!.exitCode !== null || snabb!.signalCode !== null) {
        // Snabb prints its error, then a long traceback with every local variable
        const error = text.split('\n').filter((l) => !/^\s|^load:|^link report|^Get features/.test(l)).slice(-15).join('\n');
        throw new Error(`the host's Snabb exited (${snabb!.exitCode ?? snabb!.signalCode}):\n${error}`);
      }
      if (want && !want.test(text)) throw new Error(`no ${want} in the host Snabb's log:\n${text.slice(-1500)}`);
    };
    await waitForLog(run, /is running \(tcg/, 300_000);
    const marker = await waitForLog(run, /SNABBVM-URL-MARKER/, BOOT_MS);
    console.log(`# booted from ${url}: ${marker[0]} in docker logs`);
    if (snabb) {
      // the guest's virtio-net drivers set up the rings with the host's Snabb, one port each
      checkSnabb();
      assert.equal(readFileSync(snabbLog, 'utf8').match(/vhost_user: Connected and initialized/g)?.length, 2, `both ports connected; Snabb's log:\n${readFileSync(snabbLog, 'utf8').slice(-1500)}`);
      const eth1 = await waitForLog(run, /eth1\s*UP\s*10\.77\.1\.1\/24/, 60_000); // tmux draws runs of spaces as cursor moves
      // eth1 -> Snabb -> eth2 (in the guest's other namespace) and the replies back
      const ping = await waitForLog(run, /SNABBVM-PING\s*(\d*)\s*(?:received)?\s*END/, 120_000);
      checkSnabb();
      const vm = readSnabbCounters(snabb.pid!, 'vm');
      const peer = readSnabbCounters(snabb.pid!, 'peer');
      console.log(`# ${eth1[0]}; ping 10.77.1.2 from eth1: ${ping[1] || 0} of 5 replies; the host's Snabb counted vm ${JSON.stringify(vm)}, peer ${JSON.stringify(peer)}`);
      assert.ok(Number(ping[1]) > 0, 'the guest pinged its other port through the host\'s Snabb soft switch');
      for (const [port, c] of [['vm', vm], ['peer', peer]] as const) {
        assert.ok(c && c.txPackets > 0 && c.rxPackets > 0, `Snabb's counters for ${port} moved both ways: ${JSON.stringify(c)}`);
      }
    }
    await stopAndCheck(run);
    snabb?.kill('SIGTERM');
  };
  test('from a URL on docker0, with two vhost-user ports through a Snabb soft switch on the host: a ping from one to the other', { skip: noHostSnabb, timeout: BOOT_MS + 600_000 }, () => bootFromUrl(true));
  if (noHostSnabb) test('from a URL on docker0, without ports (no Snabb here for the vhost-user ports)', { timeout: BOOT_MS + 600_000 }, () => bootFromUrl(false));

  test('an image built with SNABB_SOURCE=none fails a PCI port with one clear line and exit 4', { timeout: 1_800_000 }, async () => {
    assert.ok(buildOk);
    await buildSnabbvmImage({ tag: IMAGE_NO_SNABB, baseImage, snabb: 'none' });
    // an 82599 as sysfs shows it, under the launcher's --sysfs-root (this machine has none)
    const u = makeUserFolder('snabbvm-docker-nosnabb-', { 'debian-12.qcow2': cloudImagePath() });
    cleanups.push(() => rmSync(u, { recursive: true, force: true }));
    const dev = path.join(u, 'sys/bus/pci/devices/0000:05:00.0');
    mkdirSync(dev, { recursive: true });
    writeFileSync(path.join(dev, 'vendor'), '0x8086\n');
    writeFileSync(path.join(dev, 'device'), '0x10fb\n');
    writeFileSync(path.join(dev, 'numa_node'), '-1\n');
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(DOCKER, ['run', '--rm', '--privileged', '-v', `${u}:/u`, IMAGE_NO_SNABB, '--accel', 'tcg', '--sysfs-root', '/u/sys', 'debian-12.qcow2', '0000:05:00.0'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (b: Buffer) => (stderr += b));
      child.on('close', (code) => resolve({ code, stderr }));
    });
    console.log(`# ${r.stderr.trim()}`);
    assert.equal(r.code, 4, r.stderr);
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('snabbvm: error:'));
    assert.equal(errors.length, 1, r.stderr);
    assert.match(errors[0]!, /[Ss]nabb.*not installed/);
    assert.doesNotMatch(r.stderr, /\s+at .*\.js:\d+/, 'no stack trace');
  });
});
