import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ExitCode, UserError } from '../errors.js';
import { runtimePaths } from '../paths.js';
import { claimRunDir, readState } from './claim-run-dir.js';
import { CleanupStack } from './cleanup-stack.js';

const top = mkdtempSync(path.join(tmpdir(), 'snabbvm-claim-'));
after(() => rmSync(top, { recursive: true, force: true }));

const rejectsWith = async (promise: Promise<unknown>, code: number, re: RegExp) => {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof UserError, `expected a UserError, got ${String(err)}`);
    assert.equal(err.exitCode, code);
    assert.match(err.message, re);
    return true;
  });
};

test("--run-dir naming a folder of the user's files is refused (exit 2) and nothing in it is touched", async () => {
  const dir = path.join(top, 'u');
  mkdirSync(dir);
  writeFileSync(path.join(dir, 'debian-12.qcow2'), 'precious');
  writeFileSync(path.join(dir, 'state.json'), 'also precious');
  const cleanup = new CleanupStack();
  await rejectsWith(claimRunDir(runtimePaths(dir), 'vm1', cleanup), ExitCode.Usage, /--run-dir .*\/u is not empty and was not made by snabbvm/);
  await cleanup.unwind();
  assert.deepEqual(readdirSync(dir).sort(), ['debian-12.qcow2', 'state.json']);
  assert.equal(readFileSync(path.join(dir, 'state.json'), 'utf8'), 'also precious');
});

test('--run-dir naming the folder of all VMs (/run/snabbvm) is refused, and the other VMs keep their folders', async () => {
  const base = path.join(top, 'run-snabbvm');
  const other = new CleanupStack();
  await claimRunDir(runtimePaths(path.join(base, 'vm2')), 'vm2', other);
  try {
    const cleanup = new CleanupStack();
    await rejectsWith(claimRunDir(runtimePaths(base), 'vm1', cleanup), ExitCode.Usage, /holds the run folders of other VMs \(vm2\)/);
    await cleanup.unwind();
    assert.equal(readState(runtimePaths(path.join(base, 'vm2')))?.name, 'vm2');
  } finally {
    await other.unwind();
  }
  assert.equal(existsSync(path.join(base, 'vm2')), false);
});

test('an empty folder is used; at teardown the launcher removes its own files and then the folder', async () => {
  const empty = path.join(top, 'empty');
  mkdirSync(empty);
  const cleanup = new CleanupStack();
  await claimRunDir(runtimePaths(empty), 'vm1', cleanup);
  writeFileSync(runtimePaths(empty).qemuLog, 'log');
  assert.ok(existsSync(runtimePaths(empty).lockFile));
  writeFileSync(path.join(empty, 'added-by-the-user'), 'keep');
  await cleanup.unwind();
  assert.deepEqual(readdirSync(empty), ['added-by-the-user']);

  const fresh = path.join(top, 'fresh', 'vm1');
  const second = new CleanupStack();
  await claimRunDir(runtimePaths(fresh), 'vm1', second);
  await second.unwind();
  assert.equal(existsSync(fresh), false);
});

/** Another launcher: a process that claims the folder, records an undo in its journal, says "ready" and waits. */
function startHolder(dir: string, undoFile: string) {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const script = `
    const { claimRunDir } = await import(${JSON.stringify(path.join(here, 'claim-run-dir.js'))});
    const { CleanupStack } = await import(${JSON.stringify(path.join(here, 'cleanup-stack.js'))});
    const { runtimePaths } = await import(${JSON.stringify(path.join(here, '..', 'paths.js'))});
    const cleanup = new CleanupStack();
    await claimRunDir(runtimePaths(${JSON.stringify(dir)}), 'vm1', cleanup);
    cleanup.deferRecorded('put the file back', { file: ${JSON.stringify(undoFile)}, content: 'restored' });
    // a child that outlives its launcher (as dnsmasq does once it has dropped root)
    const { spawn } = await import('node:child_process');
    const survivor = spawn('sleep', ['1000.5'], { detached: true, stdio: 'ignore' });
    survivor.unref();
    cleanup.record('stop the survivor', { kill: survivor.pid, cmdlineHas: '1000.5' });
    console.log('ready', survivor.pid);
    setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const ready = new Promise<number>((resolve, reject) => {
    child.stdout!.on('data', (b: Buffer) => {
      const m = /ready (\d+)/.exec(b.toString());
      if (m) resolve(Number(m[1]));
    });
    child.on('exit', (code) => reject(new Error(`the holder exited with ${code}`)));
  });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  return { child, ready, exited };
}

test('a second launcher of the same VM exits 6 naming the first one, and touches nothing; after a SIGKILL of the first, the next one takes over', async () => {
  const dir = path.join(top, 'run', 'vm1');
  const undoFile = path.join(top, 'changed-by-the-first');
  writeFileSync(undoFile, 'changed');
  const holder = startHolder(dir, undoFile);
  let survivor = 0;
  try {
    survivor = await holder.ready;
    const before = readdirSync(dir).sort();
    const cleanup = new CleanupStack();
    await rejectsWith(claimRunDir(runtimePaths(dir), 'vm1', cleanup), ExitCode.AlreadyRunning, new RegExp(`a VM named 'vm1' is already running \\(pid ${holder.child.pid}`));
    await cleanup.unwind();
    assert.deepEqual(readdirSync(dir).sort(), before);
    assert.equal(readState(runtimePaths(dir))?.pid, holder.child.pid);
  } finally {
    holder.child.kill('SIGKILL');
    await holder.exited;
  }
  // the first launcher died without its teardown: the next one takes the folder over and undoes its journal
  writeFileSync(runtimePaths(dir).qemuLog, 'stale');
  for (const file of [runtimePaths(dir).extraDisk(1), runtimePaths(dir).extraDisk(12), runtimePaths(dir).efiVars]) writeFileSync(file, 'stale');
  const cleanup = new CleanupStack();
  await claimRunDir(runtimePaths(dir), 'vm1', cleanup);
  assert.equal(readState(runtimePaths(dir))?.pid, process.pid);
  assert.equal(readFileSync(undoFile, 'utf8'), 'restored');
  assert.ok(!existsSync(`/proc/${survivor}/cmdline`) || !readFileSync(`/proc/${survivor}/cmdline`, 'utf8').includes('1000.5'), 'the process the killed launcher left is stopped');
  assert.deepEqual(readdirSync(dir).filter((e) => /qemu\.log|disk\d+\.qcow2|efi-vars/.test(e)), [], 'the killed run\'s files are gone, its --disk disks and UEFI variables too');
  await cleanup.unwind();
  assert.equal(existsSync(dir), false);
});

test('two launchers of the same VM started together: exactly one gets the folder', async () => {
  const dir = path.join(top, 'race', 'vm1');
  for (let round = 0; round < 5; round++) {
    const stacks = [new CleanupStack(), new CleanupStack(), new CleanupStack()];
    const results = await Promise.allSettled(stacks.map((s) => claimRunDir(runtimePaths(dir), 'vm1', s)));
    const won = results.filter((r) => r.status === 'fulfilled').length;
    const refused = results.filter((r) => r.status === 'rejected' && (r.reason as UserError).exitCode === ExitCode.AlreadyRunning).length;
    assert.deepEqual({ won, refused }, { won: 1, refused: 2 }, JSON.stringify(results.map((r) => (r.status === 'rejected' ? String(r.reason) : 'ok'))));
    for (const s of stacks) await s.unwind();
    assert.equal(existsSync(dir), false);
  }
});
