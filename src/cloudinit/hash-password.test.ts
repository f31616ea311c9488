import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { hashPassword, sha512Crypt } from './hash-password.js';

test('SHA-512 crypt matches the reference vectors', () => {
  // from https://www.akkadia.org/drepper/SHA-crypt.txt
  assert.equal(sha512Crypt('Hello world!', 'saltstring'), '$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1');
  // the spec's vector with 'rounds=5000' spelled out hashes like the default
  assert.equal(
    sha512Crypt('This is just a test', 'toolongsaltstring'),
    '$6$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxUhx1yxdYcz/e1JSbq3y6JMxxl8audkUEm0',
  );
});

test('SHA-512 crypt agrees with openssl passwd -6, for non-ASCII and long passwords too', { skip: hasOpenssl() ? undefined : 'openssl is not installed' }, () => {
  for (const [password, salt] of [['secret', 'abcdefgh'], ['pässwörd €', 'x/y.Z09'], ['p'.repeat(200), 'sixteencharssalt']] as const) {
    const expected = execFileSync('openssl', ['passwd', '-6', '-salt', salt, '-stdin'], { input: password, encoding: 'utf8' }).trim();
    assert.equal(sha512Crypt(password, salt), expected);
  }
});

test('hashPassword uses a fresh 16-character salt each time', () => {
  const a = hashPassword('x');
  const b = hashPassword('x');
  assert.match(a, /^\$6\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{86}$/);
  assert.notEqual(a, b);
});

function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
