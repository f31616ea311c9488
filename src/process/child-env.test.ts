import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { SECRET_ENV_VARS } from './child-env.js';
import { runProgramFileToFile } from './run-program-to-file.js';
import { runProgram } from './run-program.js';
import { startProgram } from './start-program.js';

/** Sets the secrets (and one harmless variable) in the launcher's own environment for the duration of fn. */
async function withSecrets(fn: () => Promise<void>): Promise<void> {
  for (const name of SECRET_ENV_VARS) process.env[name] = `secret-of-${name}`;
  process.env.SNABBVM_TEST_HARMLESS = 'kept';
  try {
    await fn();
  } finally {
    for (const name of [...SECRET_ENV_VARS, 'SNABBVM_TEST_HARMLESS']) delete process.env[name];
  }
}

const assertNoSecrets = (environ: string, where: string) => {
  assert.match(environ, /SNABBVM_TEST_HARMLESS=kept/, `${where} got the launcher's environment`);
  for (const name of SECRET_ENV_VARS) assert.doesNotMatch(environ, new RegExp(`${name}=`), `${where} inherited ${name}`);
};

test('a long-running child (startProgram) has no password in /proc/<pid>/environ', () =>
  withSecrets(async () => {
    const child = await startProgram(['sleep', '30']);
    try {
      // the child runs through setpriv (parent-death signal), which then execs sleep: read sleep's environment,
      // not the moment of an exec, when /proc shows an empty one
      const deadline = Date.now() + 5000;
      while (!readlinkSync(`/proc/${child.pid}/exe`).endsWith('/sleep') && Date.now() < deadline) await sleep(20);
      assertNoSecrets(readFileSync(`/proc/${child.pid}/environ`, 'utf8').replace(/\0/g, '\n'), 'sleep');
    } finally {
      await child.stop(0);
    }
  }));

test('runProgram, also with an explicit env, and the file filters pass no password on', () =>
  withSecrets(async () => {
    assertNoSecrets((await runProgram(['env'])).stdout, 'runProgram');
    assertNoSecrets((await runProgram(['env'], { env: { ...process.env } })).stdout, 'runProgram with env');
    const dir = mkdtempSync(path.join(tmpdir(), 'snabbvm-env-'));
    try {
      writeFileSync(path.join(dir, 'in'), '');
      await runProgramFileToFile(['env'], { stdinPath: path.join(dir, 'in'), stdoutPath: path.join(dir, 'out') });
      assertNoSecrets(readFileSync(path.join(dir, 'out'), 'utf8'), 'runProgramFileToFile');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }));

test("the VM's tmux server (started through runProgram) has no password in its global environment", async (t) => {
  if (!(await runProgram(['tmux', '-V']).then(() => true, () => false))) return t.skip('tmux is not installed (apt-get install tmux)');
  await withSecrets(async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'snabbvm-env-'));
    const socket = path.join(dir, 'tmux.sock');
    try {
      await runProgram(['tmux', '-S', socket, '-f', '/dev/null', 'new-session', '-d', '-s', 'envtest', 'sleep', '30']);
      assertNoSecrets((await runProgram(['tmux', '-S', socket, 'show-environment', '-g'])).stdout, 'tmux server');
    } finally {
      await runProgram(['tmux', '-S', socket, 'kill-server']).catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
