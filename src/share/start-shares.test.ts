import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ExitCode, UserError } from '../errors.js';
import { buildVirtiofsdArgv, chooseShareDriver } from './start-shares.js';

test('auto takes virtiofs when virtiofsd is installed and the launcher is root, else 9p', () => {
  assert.equal(chooseShareDriver('auto', { virtiofsd: '/usr/libexec/virtiofsd', root: true }), 'virtiofs');
  assert.equal(chooseShareDriver('auto', { virtiofsd: '/usr/libexec/virtiofsd', root: false }), '9p');
  assert.equal(chooseShareDriver('auto', { virtiofsd: undefined, root: true }), '9p');
  assert.equal(chooseShareDriver('9p', { virtiofsd: '/usr/libexec/virtiofsd', root: true }), '9p');
});

test('virtiofs asked for but impossible: a host error (exit 4) that says what to do', () => {
  const hostError = (re: RegExp) => (err: unknown) => err instanceof UserError && err.exitCode === ExitCode.HostNotReady && re.test(err.message);
  assert.throws(() => chooseShareDriver('virtiofs', { virtiofsd: undefined, root: true }), hostError(/virtiofsd is not installed .*--share-driver 9p$/));
  assert.throws(() => chooseShareDriver('virtiofs', { virtiofsd: '/usr/libexec/virtiofsd', root: false }), hostError(/needs root/));
});

test("virtiofsd: its socket, the folder, and the namespace sandbox that keeps it inside the folder", () => {
  assert.deepEqual(buildVirtiofsdArgv('/usr/libexec/virtiofsd', { hostDir: '/srv/a,b', tag: 'ab' }, '/run/snabbvm/vm1/shares/virtiofsd-0.sock'), [
    '/usr/libexec/virtiofsd',
    '--socket-path=/run/snabbvm/vm1/shares/virtiofsd-0.sock',
    '--shared-dir=/srv/a,b',
    '--sandbox=namespace',
    '--cache=auto',
  ]);
});
