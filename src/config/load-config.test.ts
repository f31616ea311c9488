import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { parseRunArgs } from '../cli/run-command.js';
import { ExitCode, ProblemsError, UserError } from '../errors.js';
import { defaultShareTag, loadConfig } from './load-config.js';

const dir = mkdtempSync(path.join(tmpdir(), 'snabbvm-config-'));
writeFileSync(path.join(dir, 'disk.qcow2'), 'x');
writeFileSync(path.join(dir, 'user-data'), '#cloud-config\n');

/** argv and env → config, as the CLI does it, with relative names resolved against the test folder */
function configFor(argv: string[], env: NodeJS.ProcessEnv = {}) {
  const parsed = parseRunArgs(argv, env);
  assert.notEqual(parsed, 'exit');
  if (parsed === 'exit') throw new Error('unreachable');
  return loadConfig({ ...parsed, env, baseDir: dir });
}

/** the problems a bad command line gives, and its exit code */
function problemsFor(argv: string[], env: NodeJS.ProcessEnv = {}): { messages: string[]; exitCode: number } {
  try {
    configFor(argv, env);
  } catch (err) {
    if (err instanceof ProblemsError) return { messages: err.problems.map((p) => p.message), exitCode: err.exitCode };
    if (err instanceof UserError) return { messages: [err.message], exitCode: err.exitCode };
    throw err;
  }
  assert.fail(`no problem found in ${argv.join(' ')}`);
}

test('defaults', () => {
  const c = configFor(['disk.qcow2']);
  assert.deepEqual(c.image, { kind: 'file', path: path.join(dir, 'disk.qcow2') });
  assert.equal(c.name, 'snabbvm');
  assert.equal(c.cpus, 1);
  assert.equal(c.memoryMiB, 1024);
  assert.equal(c.accel, 'auto');
  assert.equal(c.stopTimeoutSec, 60);
  assert.equal(c.net, 'nat');
  assert.equal(c.vncDisplay, 1);
  assert.equal(c.webPort, 8006);
  assert.equal(c.hostname, 'snabbvm');
  assert.equal(c.runDir, '/run/snabbvm/snabbvm');
  assert.equal(c.cacheDir, '/var/cache/snabbvm');
  assert.deepEqual(c.ports, []);
});

test("the original's short options, and the ports after the image", () => {
  const c = configFor(['-u', 'user-data', '-c', '4', '-m', '2048', 'disk.qcow2', '0000:05:00.0', '05:00.1']);
  assert.equal(c.userDataPath, path.join(dir, 'user-data'));
  assert.equal(c.cpus, 4);
  assert.equal(c.memoryMiB, 2048);
  assert.deepEqual(c.ports, ['0000:05:00.0', '05:00.1']);
});

test('long options, memory with units', () => {
  const c = configFor(['--user-data', 'user-data', '--cpus', '2', '--memory', '2G', '--name', 'vm1', '--accel', 'tcg', 'disk.qcow2']);
  assert.equal(c.memoryMiB, 2048);
  assert.equal(c.name, 'vm1');
  assert.equal(c.accel, 'tcg');
  assert.equal(c.runDir, '/run/snabbvm/vm1');
  assert.equal(configFor(['-m', '512M', 'disk.qcow2']).memoryMiB, 512);
  assert.equal(configFor(['-m', '1.5G', 'disk.qcow2']).memoryMiB, 1536);
});

test('every option from the environment; the flag wins', () => {
  const env = { SNABBVM_MEMORY: '2G', SNABBVM_CPUS: '3', SNABBVM_NAME: 'envvm', SNABBVM_PERSIST: 'yes', SNABBVM_FORWARD: 'tcp:2222:22,udp:53:53' };
  const c = configFor(['disk.qcow2'], env);
  assert.equal(c.memoryMiB, 2048);
  assert.equal(c.cpus, 3);
  assert.equal(c.name, 'envvm');
  assert.equal(c.persist, true);
  assert.deepEqual(c.forwards, ['tcp:2222:22', 'udp:53:53']);
  const flagged = configFor(['-m', '512', '--name', 'flagvm', 'disk.qcow2'], env);
  assert.equal(flagged.memoryMiB, 512);
  assert.equal(flagged.name, 'flagvm');
});

test('the image and the ports from SNABBVM_IMAGE and SNABBVM_PORTS; the arguments win', () => {
  const env = { SNABBVM_IMAGE: 'disk.qcow2', SNABBVM_PORTS: '0000:05:00.0,vlan=42 \n soft,peer=/run/sw/vm1.sock\n' };
  const c = configFor([], env);
  assert.deepEqual(c.image, { kind: 'file', path: path.join(dir, 'disk.qcow2') });
  assert.deepEqual(c.ports, ['0000:05:00.0,vlan=42', 'soft,peer=/run/sw/vm1.sock']);
  // an image argument wins over SNABBVM_IMAGE, and still takes the ports from the environment
  writeFileSync(path.join(dir, 'other.qcow2'), 'x');
  const image = configFor(['other.qcow2'], env);
  assert.deepEqual(image.image, { kind: 'file', path: path.join(dir, 'other.qcow2') });
  assert.deepEqual(image.ports, ['0000:05:00.0,vlan=42', 'soft,peer=/run/sw/vm1.sock']);
  // port arguments win over SNABBVM_PORTS
  assert.deepEqual(configFor(['other.qcow2', '0000:06:00.0'], env).ports, ['0000:06:00.0']);
  // ports from the environment without an image: still no image
  assert.match(problemsFor([], { SNABBVM_PORTS: '0000:05:00.0' }).messages.join('\n'), /no image given; .*SNABBVM_IMAGE/);
  assert.match(problemsFor([], { SNABBVM_IMAGE: '  ' }).messages.join('\n'), /no image given/);
});

test('NAME names the VM when --name and SNABBVM_NAME are absent', () => {
  assert.equal(configFor(['disk.qcow2'], { NAME: 'fromname' }).name, 'fromname');
  assert.equal(configFor(['disk.qcow2'], { NAME: 'fromname', SNABBVM_NAME: 'fromenv' }).name, 'fromenv');
});

test('a bad yes/no in the environment is a usage error', () => {
  const p = problemsFor(['disk.qcow2'], { SNABBVM_PERSIST: 'maybe' });
  assert.equal(p.exitCode, ExitCode.Usage);
  assert.match(p.messages[0]!, /SNABBVM_PERSIST=maybe is not a yes\/no value/);
});

test('validation collects every problem, and the most basic category sets the exit code', () => {
  const p = problemsFor(['-c', '0', '-m', '12XB', '--accel', 'fast', 'missing.img']);
  assert.equal(p.exitCode, ExitCode.Usage);
  assert.equal(p.messages.length, 4);
  assert.match(p.messages.join('\n'), /image .*missing\.img does not exist/);
  assert.match(p.messages.join('\n'), /--cpus '0' is not valid/);
  assert.match(p.messages.join('\n'), /--memory '12XB' is not valid/);
  assert.match(p.messages.join('\n'), /--accel 'fast' is not valid; use one of: auto, kvm, tcg/);
});

const badLines: [string, string[], RegExp, number][] = [
  ['unknown option', ['--bogus', 'disk.qcow2'], /unknown option '--bogus'; see snabbvm --help/, ExitCode.Usage],
  ['missing image argument', [], /no image given; usage: snabbvm/, ExitCode.Usage],
  ['-c 0', ['-c', '0', 'disk.qcow2'], /--cpus '0' is not valid; give a whole number from 1 to 255/, ExitCode.Usage],
  ['-c x', ['-c', 'x', 'disk.qcow2'], /--cpus 'x' is not valid/, ExitCode.Usage],
  ['-m 12XB', ['-m', '12XB', 'disk.qcow2'], /--memory '12XB' is not valid; give MB \(2048\) or a size with a unit \(2G\)/, ExitCode.Usage],
  ['-m too small', ['-m', '16', 'disk.qcow2'], /at least 64M/, ExitCode.Usage],
  ['bad name', ['--name', 'a b', 'disk.qcow2'], /name 'a b' is not valid/, ExitCode.Usage],
  ['bad net', ['--net', 'wifi', 'disk.qcow2'], /--net 'wifi' is not valid; use one of: nat, bridge, user, none/, ExitCode.Usage],
  ['bad disk size', ['--disk-size', 'big', 'disk.qcow2'], /--disk-size 'big' is not valid/, ExitCode.Usage],
  ['bad stop timeout', ['--stop-timeout', '-1', 'disk.qcow2'], /--stop-timeout '-1' is not valid|unknown option/, ExitCode.Usage],
  ['bad forward', ['--forward', 'ssh', 'disk.qcow2'], /--forward 'ssh' is not valid; use proto:hostport:guestport/, ExitCode.Usage],
  ['bad digest', ['--sha256', 'abc', 'http://example.invalid/a.img'], /digest 'abc' is not valid; give --sha256 HEX \(64 hex digits\), --digest sha256:HEX or --digest sha512:HEX/, ExitCode.Usage],
  ['sha512 digest of 64 digits', ['--digest', `sha512:${'a'.repeat(64)}`, 'http://example.invalid/a.img'], /digest 'sha512:a{64}' is not valid/, ExitCode.Usage],
  ['unknown digest algorithm', ['--digest', `md5:${'a'.repeat(32)}`, 'http://example.invalid/a.img'], /digest 'md5:a{32}' is not valid/, ExitCode.Usage],
  ['digest on a file', ['--sha256', 'a'.repeat(64), 'disk.qcow2'], /only apply to an image given by URL/, ExitCode.Usage],
  ['gateway without ip', ['--gateway', '10.0.0.1', 'disk.qcow2'], /--gateway needs --ip/, ExitCode.Usage],
  ['missing image', ['nothere.qcow2'], /image .*nothere\.qcow2 does not exist; put it in the folder mounted at \/u/, ExitCode.BadInput],
  ['image is a folder', ['.'], /is not a file/, ExitCode.BadInput],
  ['missing user-data', ['-u', 'nope.yaml', 'disk.qcow2'], /user-data .*nope\.yaml does not exist/, ExitCode.BadInput],
  ['malformed URL', ['http://'], /image URL 'http:\/\/' is malformed/, ExitCode.BadInput],
  ['unknown scheme', ['ftp://example.invalid/a.img'], /image URL scheme 'ftp' is not supported; use http:\/\/ or https:\/\//, ExitCode.BadInput],
];
for (const [what, argv, message, exitCode] of badLines) {
  test(`bad input: ${what}`, () => {
    const p = problemsFor(argv);
    assert.equal(p.messages.length, 1, p.messages.join('\n'));
    assert.match(p.messages[0]!, message);
    assert.doesNotMatch(p.messages[0]!, /\n/);
    assert.equal(p.exitCode, exitCode);
  });
}

test('bad input: an unreadable user-data file', { skip: process.getuid?.() === 0 ? 'root reads every file; the CLI test covers it with a folder' : false }, () => {
  const f = path.join(dir, 'secret');
  writeFileSync(f, '#cloud-config\n');
  chmodSync(f, 0o000);
  assert.match(problemsFor(['-u', 'secret', 'disk.qcow2']).messages[0]!, /cannot be read \(EACCES\)/);
});

test('the web console listens where VNC does, unless told otherwise; an empty password is refused', () => {
  assert.equal(configFor(['disk.qcow2']).webListen, '0.0.0.0');
  assert.equal(configFor(['--vnc-listen', '127.0.0.1', 'disk.qcow2']).webListen, '127.0.0.1');
  assert.equal(configFor(['--vnc-listen', '127.0.0.1', 'disk.qcow2'], { SNABBVM_WEB_LISTEN: '::' }).webListen, '::');
  assert.equal(configFor(['--web', 'none', 'disk.qcow2']).webPort, undefined);
  assert.equal(configFor(['disk.qcow2'], { SNABBVM_WEB_PASSWORD: 'pw' }).webPassword, 'pw');
  const empty = problemsFor(['--web-password', '', 'disk.qcow2']);
  assert.equal(empty.exitCode, ExitCode.Usage);
  assert.match(empty.messages[0]!, /--web-password must not be empty/);
});

test('--digest takes sha256:HEX, sha512:HEX (Debian publishes SHA512SUMS) or a bare SHA-256; --sha256 a bare one', () => {
  const url = 'https://example.invalid/a.qcow2';
  assert.equal(configFor(['--digest', `sha512:${'AB'.repeat(64)}`, url]).sha512, 'ab'.repeat(64));
  assert.equal(configFor(['--digest', `sha512:${'ab'.repeat(64)}`, url]).sha256, undefined);
  assert.equal(configFor(['--digest', `SHA256:${'cd'.repeat(32)}`, url]).sha256, 'cd'.repeat(32));
  assert.equal(configFor(['--digest', 'cd'.repeat(32), url]).sha256, 'cd'.repeat(32));
  assert.equal(configFor(['--sha256', 'cd'.repeat(32), url]).sha256, 'cd'.repeat(32));
  assert.equal(configFor([url], { SNABBVM_DIGEST: `sha512:${'ef'.repeat(64)}` }).sha512, 'ef'.repeat(64));
});

test('--boot, --disk and --disk-bus: defaults, flags, the environment (SNABBVM_DISKS is a list) and bad values', () => {
  const plain = configFor(['disk.qcow2']);
  assert.equal(plain.boot, 'auto');
  assert.equal(plain.diskBus, 'virtio');
  assert.deepEqual(plain.disks, []);

  const c = configFor(['--boot', 'uefi', '--disk', '10G', '--disk', 'disk.qcow2', '--disk', '512M', '--disk-bus', 'sata', 'disk.qcow2']);
  assert.equal(c.boot, 'uefi');
  assert.equal(c.diskBus, 'sata');
  assert.deepEqual(c.disks, [
    { kind: 'blank', sizeBytes: 10 * 2 ** 30 },
    { kind: 'file', path: path.join(dir, 'disk.qcow2') },
    { kind: 'blank', sizeBytes: 512 * 2 ** 20 },
  ]);
  const fromEnv = configFor(['disk.qcow2'], { SNABBVM_BOOT: 'bios', SNABBVM_DISKS: '1G\n disk.qcow2 ', SNABBVM_DISK_BUS: 'scsi' });
  assert.equal(fromEnv.boot, 'bios');
  assert.equal(fromEnv.diskBus, 'scsi');
  assert.deepEqual(fromEnv.disks.map((d) => d.kind), ['blank', 'file']);
  assert.deepEqual(configFor(['--disk', '2G', 'disk.qcow2'], { SNABBVM_DISKS: '1G 3G' }).disks, [{ kind: 'blank', sizeBytes: 2 * 2 ** 30 }], 'the flag wins');

  const bad = problemsFor(['--boot', 'efi', '--disk-bus', 'nvme', '--disk', 'nosuch.img', '--disk', '0.1K', 'disk.qcow2']);
  assert.deepEqual(bad.messages, [
    "--disk-bus 'nvme' is not valid; use one of: virtio, scsi, sata, ide",
    `--disk ${path.join(dir, 'nosuch.img')} does not exist; put it in the folder mounted at /u (-v $PWD:/u)`,
    "--disk '0.1K' is not valid; give a size with a unit, such as 10G, or a disk image file",
    "--boot 'efi' is not valid; use one of: auto, bios, uefi",
  ]);
  assert.equal(bad.exitCode, ExitCode.Usage);
  const tooMany = problemsFor(['--disk-bus', 'ide', '--disk', '1G', '--disk', '1G', '--disk', '1G', 'disk.qcow2']);
  assert.match(tooMany.messages[0]!, /^--disk-bus ide takes at most 3 disks with the boot disk/);
});

test('--share: the tag after the last colon, else the folder name made safe; relative folders from /u', () => {
  const shared = path.join(dir, 'my data@2026');
  mkdirSync(shared, { recursive: true });
  mkdirSync(path.join(dir, 'x:y'), { recursive: true });
  const c = configFor(['--share', 'my data@2026', '--share', `${dir}:web`, '--share', `${dir}/x:y/`, 'disk.qcow2']);
  assert.deepEqual(c.shares, [
    { hostDir: shared, tag: 'my_data_2026' },
    { hostDir: dir, tag: 'web' },
    { hostDir: path.join(dir, 'x:y'), tag: 'x_y' },
  ]);
  assert.equal(c.shareDriver, 'auto');
  assert.deepEqual(configFor(['disk.qcow2'], { SNABBVM_SHARES: `${dir}:a,${shared}` }).shares.map((s) => s.tag), ['a', 'my_data_2026']);
  assert.equal(defaultShareTag('/srv/.hidden'), 'hidden');
  assert.equal(defaultShareTag('/'), 'share');
});

test('--share: a missing folder, a file, a bad or repeated tag, each in one line', () => {
  const { messages, exitCode } = problemsFor(['--share', 'nosuch', '--share', 'disk.qcow2', '--share', `${dir}:.x`, '--share', `${dir}:a`, '--share', `${dir}:a`, 'disk.qcow2']);
  assert.deepEqual(messages, [
    `--share ${path.join(dir, 'nosuch')} does not exist; create it, or mount it into the container (-v /host/dir:${path.join(dir, 'nosuch')})`,
    `--share ${path.join(dir, 'disk.qcow2')} is not a folder; share a folder (put files in it)`,
    `--share '${dir}:.x' is not valid: give HOSTDIR or HOSTDIR:TAG, a TAG of letters, digits, '_', '.' and '-' (at most 36, not starting with '.' or '-')`,
    `--share '${dir}:a': tag 'a' is already used by another --share; give each its own tag (HOSTDIR:TAG)`,
  ]);
  assert.equal(exitCode, ExitCode.Usage);
});

test('--machine, --cpu-model, --pointer, --qemu-arg; host needs KVM', () => {
  const c = configFor(['--machine', 'pc', '--cpu-model', 'Skylake-Client,-hle', '--pointer', 'ps2', '--qemu-arg=-smbios', '--qemu-arg', 'type=1,serial=X', 'disk.qcow2']);
  assert.equal(c.machine, 'pc');
  assert.equal(c.cpuModel, 'Skylake-Client,-hle');
  assert.equal(c.pointer, 'ps2');
  assert.deepEqual(c.qemuArgs, ['-smbios', 'type=1,serial=X']);
  const d = configFor(['disk.qcow2'], { SNABBVM_QEMU_ARGS: '-smbios type=1,serial=Y\n-no-hpet', SNABBVM_MACHINE: 'pc-q35-10.0' });
  assert.deepEqual(d.qemuArgs, ['-smbios', 'type=1,serial=Y', '-no-hpet']);
  assert.equal(d.machine, 'pc-q35-10.0');
  assert.equal(d.pointer, 'tablet');
  assert.equal(d.cpuModel, undefined);
  assert.deepEqual(problemsFor(['--accel', 'tcg', '--cpu-model', 'host', 'disk.qcow2']).messages, [
    '--cpu-model host needs KVM and cannot run under --accel tcg; use max (the default under TCG) or a named model such as Skylake-Client',
  ]);
  assert.equal(problemsFor(['--machine', 'q35,accel=kvm', 'disk.qcow2']).exitCode, ExitCode.Usage);
  assert.equal(problemsFor(['--pointer', 'mouse', 'disk.qcow2']).exitCode, ExitCode.Usage);
  assert.deepEqual(problemsFor(['--machine', 'pc', '--disk-bus', 'sata', 'disk.qcow2']).messages, [
    '--disk-bus sata needs a q35 machine (its AHCI controller), not --machine pc; use --disk-bus ide with this machine',
  ]);
  assert.equal(configFor(['--machine', 'pc-q35-7.2', '--disk-bus', 'sata', 'disk.qcow2']).diskBus, 'sata');
});
