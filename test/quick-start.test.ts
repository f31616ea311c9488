/**
 * The README's quick start, run as a reader would paste it: its commands are read from README.md (so this test
 * breaks when the README drifts), and only the public image URL and its digest are replaced, by the fixture image
 * served from the test's own HTTP server on docker0 and that file's SHA-512. `docker run -i -t` gets a terminal
 * from script(1). The VM must reach the marker examples/user_data.txt's runcmd prints, then the README's stop
 * command must power it off: `docker run` exits 0, and no container is left.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { cloudImagePath, repoRoot, whyNoVmTests } from './helpers/fixtures.js';
import { bridgeAddress, buildBaseImage, buildSnabbvmImage, docker, flattenTerminalOutput, HOST_SNABB, HOST_SNABB_VERSION, removeContainer, setUpDocker, whyNoDockerTests } from './helpers/docker-image.js';

const skip = whyNoDockerTests() ?? whyNoVmTests() ?? whyNoScript();
/** the image tag the README builds and runs */
const README_TAG = 'snabbvm';
/** what examples/user_data.txt's runcmd prints on the serial console */
const MARKER = 'snabbvm-example: cloud-init finished';

function whyNoScript(): string | undefined {
  try {
    execFileSync('script', ['--version'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'script(1) is not installed (apt-get install bsdutils): docker run -i -t needs a terminal';
  }
}

/**
 * The shell commands of the README's quick start: its indented code blocks, with backslash-continued lines joined.
 * The first block starts the VM, the one with `docker stop` stops it.
 */
function quickStartCommands(readme: string): { start: string[]; stop: string } {
  const section = readme.split(/^## /m).find((s) => s.startsWith('Quick start\n'));
  assert.ok(section, 'the README has a "## Quick start" section');
  const blocks: string[][] = [];
  let current: string[] | undefined;
  for (const line of section.split('\n')) {
    if (line.startsWith('    ')) (current ??= (blocks.push([]), blocks.at(-1)!)).push(line.slice(4));
    else if (line.trim() !== '' || current === undefined) current = undefined;
  }
  const commands = blocks.map((b) => b.join('\n').replace(/\\\n\s*/g, '').split('\n').map((c) => c.trim()).filter((c) => c !== ''));
  const stop = commands.find((b) => b.some((c) => c.startsWith('docker stop')));
  assert.ok(commands[0] && stop, `the quick start has a block to start the VM and one with docker stop; found ${JSON.stringify(commands)}`);
  return { start: commands[0], stop: stop.find((c) => c.startsWith('docker stop'))! };
}

const sha512Of = (file: string) => new Promise<string>((resolve, reject) => {
  const hash = createHash('sha512');
  createReadStream(file).on('data', (b) => hash.update(b)).on('end', () => resolve(hash.digest('hex'))).on('error', reject);
});

describe("the README's quick start, pasted", { skip }, () => {
  const cleanups: (() => Promise<unknown> | unknown)[] = [];
  let image = '';
  let server: Server;
  let fixtureUrlBase = '';

  before(async () => {
    image = cloudImagePath();
    setUpDocker();
    const t0 = Date.now();
    await buildSnabbvmImage({ tag: 'snabbvm:test', baseImage: buildBaseImage(), snabb: existsSync(HOST_SNABB) && existsSync(HOST_SNABB_VERSION) ? 'local' : 'none' });
    console.log(`# built snabbvm:test in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    server = createServer((req, res) => {
      res.writeHead(200, { 'content-length': statSync(image).size, 'content-type': 'application/octet-stream' });
      createReadStream(image).pipe(res);
    });
    const host = bridgeAddress();
    await new Promise<void>((resolve) => server.listen(0, host, resolve));
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    fixtureUrlBase = `http://${host}:${(server.address() as { port: number }).port}`;
  });

  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  test('reaches the marker of examples/user_data.txt, and the README\'s docker stop ends it with exit 0, leaving nothing', { timeout: 1_200_000 }, async () => {
    const { start, stop } = quickStartCommands(readFileSync(path.join(repoRoot, 'README.md'), 'utf8'));
    // the image build is the tests' own (this machine needs a local base image and its Snabb); the rest runs as written
    assert.equal(start[0], `docker build -t ${README_TAG} .`);
    assert.equal(start[1], 'cd examples');
    const run = start.slice(2).join(' && ');
    assert.match(run, /^docker run --name vm1 --rm --privileged -i -t /);
    const url = /https:\/\/cloud\.debian\.org\/images\/cloud\/bookworm\/(\d{8}-\d+)\/(debian-12-genericcloud-amd64-\1\.qcow2)/.exec(run);
    assert.ok(url, `the quick start pins a dated Debian 12 build: ${run}`);
    const digest = /--digest sha512:([0-9a-f]{128})/.exec(run);
    assert.ok(digest, 'with the SHA-512 Debian publishes for it');
    const pasted = run.replace(url[0], `${fixtureUrlBase}/${url[2]}`).replace(digest[1]!, await sha512Of(image));

    // the README runs the tag "snabbvm": point it at the tests' image, unless this machine has its own
    const ownTag = await docker(['image', 'inspect', README_TAG]).then(() => true, () => false);
    const command = ownTag ? pasted.replace(/ snabbvm -u /, ' snabbvm:test -u ') : pasted;
    if (!ownTag) {
      await docker(['tag', 'snabbvm:test', README_TAG]);
      cleanups.push(() => docker(['rmi', README_TAG]).catch(() => {}));
    }
    const hadVolume = await docker(['volume', 'inspect', 'snabbvm-cache']).then(() => true, () => false);
    if (!hadVolume) cleanups.push(() => docker(['volume', 'rm', 'snabbvm-cache']).catch(() => {}));
    await removeContainer('vm1');
    cleanups.push(() => removeContainer('vm1'));

    console.log(`# (cd examples && ${command})`);
    const t0 = Date.now();
    // script(1) gives docker run -i -t its terminal; stdin stays open (a pipe never ended), as a user's would
    const child = spawn('script', ['-qfec', `stty cols 120 rows 40; ${command}`, '/dev/null'], { cwd: path.join(repoRoot, 'examples'), stdio: ['pipe', 'pipe', 'pipe'] });
    let screen = '';
    child.stdout.on('data', (b: Buffer) => (screen += b.toString('latin1')));
    child.stderr.on('data', (b: Buffer) => (screen += b.toString('latin1')));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    cleanups.push(() => child.exitCode === null && child.kill('SIGKILL'));

    // the serial log in the container has everything the guest printed (the terminal shows tmux's screen)
    const serial = () => docker(['exec', 'vm1', 'sh', '-c', 'cat /run/snabbvm/*/serial.log']).catch(() => '');
    let booted = false;
    for (const deadline = Date.now() + 1_000_000; Date.now() < deadline && child.exitCode === null; await sleep(3000)) {
      if ((await serial()).includes(MARKER)) {
        booted = true;
        break;
      }
    }
    const bootS = (Date.now() - t0) / 1000;
    assert.ok(booted, `the marker "${MARKER}" in the serial log; the terminal showed:\n${flattenTerminalOutput(screen).slice(-3000)}`);
    console.log(`# marker after ${bootS.toFixed(0)} s (download of the fixture, TCG boot, cloud-init)`);
    assert.match(flattenTerminalOutput(screen), new RegExp(MARKER), "and on the user's terminal");
    // Docker's default network has no IPv6: the VM still gets its own on the inside link, and the log says so
    assert.match(flattenTerminalOutput(screen), /eth0: IPv6 on fd[0-9a-f:]+\/64 by router advertisement, the VM is fd[0-9a-f:]+; the container has no IPv6 route out/);

    assert.match(stop, /^docker stop -t \d+ vm1$/);
    const t1 = Date.now();
    execFileSync('sh', ['-c', stop], { stdio: 'ignore', timeout: 150_000 });
    const code = await exited;
    console.log(`# ${stop}: ${((Date.now() - t1) / 1000).toFixed(1)} s`);
    assert.equal(code, 0, `docker run exits 0 (the guest powered off); the terminal showed:\n${flattenTerminalOutput(screen).slice(-2000)}`);
    assert.equal((await docker(['ps', '-a', '--filter', 'name=^vm1$', '--format', '{{.Names}}'])).trim(), '', '--rm removed the container');
    const clients = (() => {
      try {
        return execFileSync('pgrep', ['-f', 'docker run --name vm1'], { encoding: 'utf8' }).trim();
      } catch {
        return ''; // pgrep exits 1 when nothing matches
      }
    })();
    assert.equal(clients, '', 'no docker client is left');
  });
});
