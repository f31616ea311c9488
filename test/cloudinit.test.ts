/**
 * cloud-init seeds against the real cloud-init 22.4 in the fixture image, booted under TCG: one NoCloud boot that
 * checks everything the seed says, one config-drive boot with the same user-data. Also the seed image itself (no
 * boot), and bad user-data refused before anything starts.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { sha512Crypt } from '../src/cloudinit/hash-password.js';
import { buildInstanceId } from '../src/cloudinit/render-seed.js';
import { writeSeed } from '../src/cloudinit/write-seed.js';
import { loadConfig } from '../src/config/load-config.js';
import { CleanupStack } from '../src/lifecycle/cleanup-stack.js';
import { macAddress } from '../src/network/mac-address.js';
import { runtimePaths } from '../src/paths.js';
import { cloudImagePath, whyNoVmTests } from './helpers/fixtures.js';
import { processesMatching, runLauncher, startLauncher } from './helpers/launcher.js';

const work = mkdtempSync(path.join(tmpdir(), 'snabbvm-cloudinit-'));
after(() => rmSync(work, { recursive: true, force: true }));
const PASSWORD = 'c0nsole-Pa55';
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGlZ0e3uH2YbC9x7a0b1c2d3e4f5g6h7i8j9k0l1m2n3 snabbvm-test-key';
const TESTER_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBf0r3kQvbYwnSxYVZlXNGlCG0YnJnVf6T1k8rFdJ6pA tester-key';

/** The user's own cloud-config: a user besides the default one, a file, and runcmd printing what the test checks. */
const USER_DATA = `#cloud-config
users:
  - default
  - name: tester
    shell: /bin/bash
    ssh_authorized_keys:
      - ${TESTER_KEY}
write_files:
  - path: /etc/snabbvm-test.txt
    content: |
      hello from write_files
runcmd:
  - dmesg -n 1
  - echo "CI-MARK runcmd ran" > /dev/ttyS0
  - echo "CI-HOSTNAME $(hostname)" > /dev/ttyS0
  - echo "CI-FILE $(cat /etc/snabbvm-test.txt)" > /dev/ttyS0
  - echo "CI-DEFAULTKEY $(grep -c snabbvm-test-key /home/debian/.ssh/authorized_keys)" > /dev/ttyS0
  - echo "CI-TESTER $(id -un tester) $(grep -c tester-key /home/tester/.ssh/authorized_keys)" > /dev/ttyS0
  - for d in /sys/class/net/eth*; do echo "CI-NIC $(cat $d/address) $(basename $d) $(ip -o -4 addr show dev $(basename $d) | awk '{print $4}')" > /dev/ttyS0; done
  - echo "CI-ROUTE $(ip route show default)" > /dev/ttyS0
  - echo "CI-SHADOW $(getent shadow debian | cut -f2 -d:)" > /dev/ttyS0
  - echo "CI-CLOUDID $(cloud-id) $(cat /var/lib/cloud/data/instance-id)" > /dev/ttyS0
power_state:
  mode: poweroff
  delay: now
`;

/** One boot with this seed: what the guest reported on its serial console. */
async function bootAndReport(name: string, extraArgs: string[]): Promise<{ report: Map<string, string>; shadowHash: string; instanceId: string }> {
  const image = cloudImagePath();
  const runDir = path.join(work, name);
  const vm = startLauncher(
    ['--accel', 'tcg', '--net', 'user', '--vnc', 'none', '--web', 'none', '--console', 'stdio', '--name', name, '--run-dir', runDir, '--ssh-key', KEY, '--password', PASSWORD, '-u', 'user-data.yaml', ...extraArgs, image],
    { cwd: work },
  );
  await vm.waitFor(/is running/, 120_000);
  // The seed holds the password only as its hash (salted SHA-512 crypt).
  const seedText = filesUnder(path.join(runDir, 'seed')).map((f) => readFileSync(f, 'utf8')).join('\n');
  assert.ok(!seedText.includes(PASSWORD), 'no clear password in the seed');
  const hash = /\$6\$([./0-9A-Za-z]{16})\$[./0-9A-Za-z]{86}/.exec(seedText);
  assert.ok(hash, 'a SHA-512 crypt hash in the seed');
  assert.equal(sha512Crypt(PASSWORD, hash[1]!), hash[0]);

  await vm.waitFor(/CI-CLOUDID .*\r?\n/, 900_000);
  const { code } = await vm.exited; // the user-data powers the guest off
  assert.equal(code, 0, vm.stderr());
  assert.ok(!vm.stderr().includes(PASSWORD), 'the launcher never prints the password');
  assert.equal(existsSync(runDir), false, 'the run folder (seed included) is gone');
  assert.deepEqual(await processesMatching(`snabbvm-${name}`), []);
  const report = new Map<string, string>();
  for (const m of vm.stdout().matchAll(/^(CI-[A-Z]+(?: [0-9a-f:]{17})?) ?(.*?)\r?$/gm)) report.set(m[1]!, m[2]!.trim());
  return { report, shadowHash: hash[0], instanceId: buildInstanceId(name, { kind: 'file', path: image }) };
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesUnder(path.join(dir, e.name)) : [path.join(dir, e.name)]));
}

const skip = whyNoVmTests();
describe('cloud-init, booted', { skip }, () => {
  writeFileSync(path.join(work, 'user-data.yaml'), USER_DATA);

  test('NoCloud: runcmd, write_files, --hostname, --ssh-key beside the user\'s users:, --password, a static address on the NIC with its MAC', { timeout: 1_000_000 }, async () => {
    const name = 'ci-nocloud';
    const { report, shadowHash, instanceId } = await bootAndReport(name, ['--hostname', 'ci-host-one', '--ip', '10.0.2.50/24', '--gateway', '10.0.2.2']);
    assert.equal(report.get('CI-MARK'), 'runcmd ran');
    assert.equal(report.get('CI-HOSTNAME'), 'ci-host-one');
    assert.equal(report.get('CI-FILE'), 'hello from write_files');
    assert.equal(report.get('CI-DEFAULTKEY'), '1', "--ssh-key is in the default user's (debian) authorized_keys");
    assert.equal(report.get('CI-TESTER'), 'tester 1', "the user-data's own user and key are there too");
    assert.equal(report.get(`CI-NIC ${macAddress(name, 0)}`), 'eth0 10.0.2.50/24', 'the static address is on the NIC with that MAC');
    assert.match(report.get('CI-ROUTE') ?? '', /^default via 10\.0\.2\.2 dev eth0/);
    assert.equal(report.get('CI-SHADOW'), shadowHash, "the default user's password is --password (its hash, checked above)");
    assert.equal(report.get('CI-CLOUDID'), `nocloud ${instanceId}`, 'NoCloud, with the instance-id derived from name and image');
  });

  test('config drive: the same user-data applies; network_data.json sets the address', { timeout: 1_000_000 }, async () => {
    const name = 'ci-configdrive';
    const { report, shadowHash, instanceId } = await bootAndReport(name, ['--seed-format', 'configdrive', '--ip', '10.0.2.60/24', '--gateway', '10.0.2.2']);
    assert.equal(report.get('CI-MARK'), 'runcmd ran');
    assert.equal(report.get('CI-HOSTNAME'), 'ci-configdrive', 'the hostname defaults to the VM name');
    assert.equal(report.get('CI-FILE'), 'hello from write_files');
    assert.equal(report.get('CI-DEFAULTKEY'), '1');
    assert.equal(report.get('CI-TESTER'), 'tester 1');
    assert.equal(report.get(`CI-NIC ${macAddress(name, 0)}`), 'eth0 10.0.2.60/24');
    assert.match(report.get('CI-ROUTE') ?? '', /^default via 10\.0\.2\.2 dev eth0/);
    assert.equal(report.get('CI-SHADOW'), shadowHash);
    assert.equal(report.get('CI-CLOUDID'), `configdrive ${instanceId}`, 'read from the config drive');
  });
});

const isoTools = ['xorriso', 'isoinfo'].every((p) => spawnSync(p, ['--version'], { stdio: 'ignore' }).status === 0);
describe('the seed image (no boot)', { skip: isoTools ? undefined : 'xorriso or isoinfo is not installed' }, () => {
  const dir = mkdtempSync(path.join(work, 'seed-'));
  writeFileSync(path.join(dir, 'disk.img'), 'x');
  writeFileSync(path.join(dir, 'key.pub'), `${KEY}\n`);
  const seedFor = async (args: Record<string, unknown>, nics = [{ name: 'eth0', mac: '52:54:00:00:00:01', dhcp: true, addresses: [] }]) => {
    const config = loadConfig({ raw: { runDir: path.join(dir, 'run'), ...args }, positionals: ['disk.img'], env: {}, baseDir: dir });
    const paths = runtimePaths(config.runDir);
    mkdirSync(paths.runDir, { recursive: true });
    const cleanup = new CleanupStack();
    const iso = await writeSeed(config, paths, nics, cleanup);
    assert.equal(iso, paths.seedImage);
    const info = execFileSync('isoinfo', ['-d', '-i', iso], { encoding: 'utf8' });
    const listing = execFileSync('isoinfo', ['-R', '-f', '-i', iso], { encoding: 'utf8' }).trim().split('\n').sort();
    const read = (file: string) => execFileSync('isoinfo', ['-R', '-x', file, '-i', iso], { encoding: 'utf8' });
    return { config, info, listing, read, cleanup, paths };
  };

  test('without -u: NoCloud (cidata) with the hostname, the key and eth0; removed at teardown', async () => {
    const { info, listing, read, cleanup, paths, config } = await seedFor({ name: 'seedvm', sshKey: ['key.pub'] });
    assert.match(info, /Volume id: cidata/);
    assert.deepEqual(listing, ['/meta-data', '/network-config', '/user-data']);
    assert.equal(read('/user-data'), '#cloud-config\n');
    assert.equal(read('/meta-data'), `instance-id: ${buildInstanceId('seedvm', config.image)}\nlocal-hostname: seedvm\npublic-keys:\n  - ${KEY}\n`);
    assert.match(read('/network-config'), /macaddress: 52:54:00:00:00:01/);
    await cleanup.unwind();
    assert.equal(existsSync(paths.seedImage), false);
    assert.equal(existsSync(paths.seedDir), false);
  });

  test('config drive (config-2): openstack/latest, the user-data byte for byte; --new-instance changes the instance-id', async () => {
    writeFileSync(path.join(dir, 'ud'), USER_DATA);
    const { info, listing, read, cleanup, config } = await seedFor({ name: 'seedvm', seedFormat: 'configdrive', userData: 'ud', newInstance: true });
    assert.match(info, /Volume id: config-2/);
    assert.deepEqual(listing, ['/openstack', '/openstack/latest', '/openstack/latest/meta_data.json', '/openstack/latest/network_data.json', '/openstack/latest/user_data']);
    assert.equal(read('/openstack/latest/user_data'), USER_DATA);
    const meta = JSON.parse(read('/openstack/latest/meta_data.json'));
    assert.equal(meta.hostname, 'seedvm');
    assert.notEqual(meta.uuid, buildInstanceId('seedvm', config.image), '--new-instance');
    await cleanup.unwind();
  });

});

describe('bad user-data: exit 3, one line with line and column, nothing started', () => {
  const dir = mkdtempSync(path.join(work, 'bad-'));
  writeFileSync(path.join(dir, 'disk.img'), 'not looked at: the user-data is checked first');
  const cases: [string, string | Buffer, RegExp][] = [
    ['a YAML tab indent', '#cloud-config\npassword: hunter2\nruncmd:\n\t- echo hi\n', /user-data \S+bad\.yaml line 4, column 1 \("\\t- echo hi"\): a tab is used for indentation/],
    ['an unclosed quote', '#cloud-config\nruncmd:\n  - "echo hi\n  - ls\n', /line 3, column 5 \("  - \\"echo hi"\): this double-quoted string is never closed/],
    ['a list at the top level', '#cloud-config\n- runcmd\n- ls\n', /line 2, column 1 \("- runcmd"\): the top level is a list; cloud-config must be a mapping/],
    ['no header', 'runcmd:\n  - ls\n', /has no header cloud-init recognizes, so cloud-init would ignore it; it looks like cloud-config YAML: add #cloud-config as its first line/],
    ['an empty file', '', /bad\.yaml is empty; start it with #cloud-config, #! \(a script\), #include/],
    ['a binary file', Buffer.from([0x51, 0x46, 0x49, 0xfb, 0, 0, 0, 3, 0, 0, 0, 0, 0xff, 0xfe, 0x80]), /bad\.yaml is a binary file, not user-data/],
  ];
  for (const [what, content, message] of cases) {
    test(what, async () => {
      writeFileSync(path.join(dir, 'bad.yaml'), content);
      const runDir = path.join(dir, 'run');
      const r = await runLauncher(['--accel', 'tcg', '--net', 'none', '--run-dir', runDir, '-u', 'bad.yaml', 'disk.img'], { cwd: dir });
      assert.equal(r.code, 3, r.stderr);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0]!, /^snabbvm: error: user-data /);
      assert.match(lines[0]!, message);
      assert.doesNotMatch(r.stderr, /hunter2/, 'nothing of the file but the offending line');
      assert.equal(existsSync(runDir), false, 'nothing was started');
    });
  }
});
