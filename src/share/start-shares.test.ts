import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ExitCode, UserError } from '../errors.js';
import { buildVirtiofsdArgv, chooseShareDriver, virtiofsdFlavour } from './start-shares.js';

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

test("virtiofsd: its socket, the folder, and the namespace sandbox that keeps it inside the folder, for either virtiofsd", () => {
  const share = { hostDir: '/srv/a,b', tag: 'ab' };
  const socket = '/run/snabbvm/vm1/shares/virtiofsd-0.sock';
  assert.deepEqual(buildVirtiofsdArgv('/usr/libexec/virtiofsd', 'rust', share, socket), [
    '/usr/libexec/virtiofsd',
    `--socket-path=${socket}`,
    '--shared-dir=/srv/a,b',
    '--sandbox=namespace',
    '--cache=auto',
  ]);
  assert.deepEqual(buildVirtiofsdArgv('/usr/lib/qemu/virtiofsd', 'qemu-c', share, socket), [
    '/usr/lib/qemu/virtiofsd',
    `--socket-path=${socket}`,
    '-o', 'source=/srv/a\\,b',
    '-o', 'sandbox=namespace',
    '-o', 'cache=auto',
  ]);
  assert.equal(virtiofsdFlavour('virtiofsd version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\n'), 'qemu-c');
  assert.equal(virtiofsdFlavour('virtiofsd 1.13.2\n'), 'rust');
});
