import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { ExitCode, UserError } from '../errors.js';
import { editDistance, mistypedCommand, qemuxVariableWarnings, unknownOptionMessage } from './hints.js';
import { locateVm } from './locate-vm.js';
import { buildRunParser, parseRunArgs, runCommand, VERSION } from './run-command.js';
import { subcommands } from './subcommands.js';

const dir = mkdtempSync(path.join(tmpdir(), 'snabbvm-cli-'));
writeFileSync(path.join(dir, 'stat'), 'x');

/** what a command writes to stdout, and its exit code */
async function stdoutOf(argv: string[]): Promise<{ out: string; code: number }> {
  const write = process.stdout.write;
  let out = '';
  process.stdout.write = ((chunk: string | Uint8Array) => ((out += String(chunk)), true)) as typeof process.stdout.write;
  try {
    const code = await runCommand(argv, {}, dir);
    return { out, code };
  } finally {
    process.stdout.write = write;
  }
}

/** the UserError a command line throws */
async function errorOf(run: () => unknown): Promise<UserError> {
  try {
    await run();
  } catch (err) {
    if (err instanceof UserError) return err;
    throw err;
  }
  assert.fail('no error');
}

test('-v, --version and the word version print the version', async () => {
  for (const argv of [['-v'], ['--version'], ['version']]) {
    const { out, code } = await stdoutOf(argv);
    assert.equal(out.trim(), VERSION, argv.join(' '));
    assert.equal(code, ExitCode.Ok);
  }
});

test('the word help prints the help, and help <command> that command\'s', async () => {
  const { out, code } = await stdoutOf(['help']);
  assert.equal(code, ExitCode.Ok);
  assert.match(out, /^Usage: snabbvm \[options\]/);
  const status = await stdoutOf(['help', 'status']);
  assert.match(status.out, /^Usage: snabbvm status/);
});

test('--help shows the port syntax and examples', () => {
  const parser = buildRunParser();
  let out = '';
  parser.configureOutput({ writeOut: (s) => (out += s) });
  assert.throws(() => parser.parse(['--help'], { from: 'user' }));
  for (const text of [',vlan=', ',ip=', 'soft,peer=', 'vhost-user:', 'Examples:', '--stop-timeout 90', '-u user_data.txt']) {
    assert.ok(out.includes(text), `--help mentions ${text}`);
  }
});

test('edit distance', () => {
  assert.equal(editDistance('stauts', 'status'), 2);
  assert.equal(editDistance('stop', 'stop'), 0);
  assert.equal(editDistance('', 'abc'), 3);
  assert.equal(editDistance('consle', 'console'), 1);
});

test('an image argument close to a command, with no such file, says "did you mean" with exit 2', async () => {
  const commands = [...Object.keys(subcommands), 'help', 'version'];
  assert.equal(mistypedCommand('stauts', commands, dir), 'status');
  assert.equal(mistypedCommand('consle', commands, dir), 'console');
  assert.equal(mistypedCommand('verison', commands, dir), 'version');
  // a file by that name, an extension, a path, a URL, a name far from every command: an image
  assert.equal(mistypedCommand('stat', commands, dir), undefined);
  assert.equal(mistypedCommand('stauts.qcow2', commands, dir), undefined);
  assert.equal(mistypedCommand('images/stauts', commands, dir), undefined);
  assert.equal(mistypedCommand('debian', commands, dir), undefined);
  const err = await errorOf(() => runCommand(['stauts'], {}, dir));
  assert.equal(err.exitCode, ExitCode.Usage);
  assert.match(err.message, /did you mean 'status'\?/);
});

test("another tool's spelling (--ram) names the snabbvm option; --disk is an option of its own", async () => {
  const err = await errorOf(() => parseRunArgs(['--ram', '2G', 'disk.qcow2'], {}));
  assert.equal(err.exitCode, ExitCode.Usage);
  assert.match(err.message, /unknown option '--ram'; use --memory/);
  assert.match(unknownOptionMessage("error: unknown option '--vcpus=2'"), /use --cpus/);
  const parsed = parseRunArgs(['--disk', '20G', '--disk', 'data.qcow2', 'disk.qcow2'], {});
  assert.ok(parsed !== 'exit');
  assert.deepEqual(parsed.raw.disk, ['20G', 'data.qcow2']);
  // other unknown options keep commander's suggestion, on one line
  const other = await errorOf(() => parseRunArgs(['--memroy', '2G', 'disk.qcow2'], {}));
  assert.match(other.message, /unknown option '--memroy'.*--memory/);
  assert.doesNotMatch(other.message, /\n/);
});

test('a qemux/qemu variable in the environment gets a warning naming the snabbvm option', () => {
  const warnings = qemuxVariableWarnings({ RAM_SIZE: '4G', CPU_CORES: '2', DISK_SIZE: '20G', BOOT: 'https://x/y.iso', PATH: '/bin' });
  assert.equal(warnings.length, 4);
  assert.ok(warnings.some((w) => w.startsWith('RAM_SIZE') && w.includes('--memory')));
  assert.ok(warnings.some((w) => w.startsWith('CPU_CORES') && w.includes('--cpus')));
  assert.ok(warnings.some((w) => w.startsWith('DISK_SIZE') && w.includes('--disk-size')));
  assert.ok(warnings.some((w) => w.startsWith('BOOT') && w.includes('argument')));
  assert.deepEqual(qemuxVariableWarnings({ PATH: '/bin', RAM_SIZE: '' }), []);
});

test('status/console/stop of an unknown name: "no VM named X", exit 3, with the VMs that are here', () => {
  const runBase = mkdtempSync(path.join(tmpdir(), 'snabbvm-run-'));
  const none = (() => {
    try {
      locateVm({ name: 'nosuch' }, {}, runBase);
    } catch (err) {
      return err as UserError;
    }
    assert.fail('no error');
  })();
  assert.equal(none.exitCode, ExitCode.BadInput);
  assert.match(none.message, /no VM named 'nosuch'; no VM runs in this container/);
  mkdirSync(path.join(runBase, 'vm1'));
  mkdirSync(path.join(runBase, 'vm2'));
  assert.throws(() => locateVm({ name: 'nosuch' }, {}, runBase), /no VM named 'nosuch'; the VMs here: vm1, vm2/);
  assert.throws(() => locateVm({}, { NAME: 'vm3' }, runBase), /no VM named 'vm3'/);
  assert.equal(locateVm({ name: 'vm2' }, {}, runBase).paths.runDir, path.join(runBase, 'vm2'));
  // --run-dir is taken as given
  assert.equal(locateVm({ runDir: path.join(runBase, 'elsewhere') }, {}, runBase).name, 'elsewhere');
});
