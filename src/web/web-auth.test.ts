import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { GuessLimiter, HostCheck, hostName, originAllowed, parseCookies, sessionCookieName, WebAuth } from './web-auth.js';

const request = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage;
const cookieOf = (setCookie: string) => setCookie.split(';')[0]!;

test('without a password everyone is let in', async () => {
  const auth = new WebAuth(undefined);
  assert.equal(auth.required, false);
  assert.equal(await auth.authorize(request({})), 'ok');
});

test('with a password: a session cookie from a login, or the password as a bearer token', async () => {
  const auth = new WebAuth('s3cret', 'snabbvm_vm1_8006');
  assert.equal(await auth.authorize(request({})), 'denied');
  assert.equal(auth.passwordMatches('s3cret'), true);
  assert.equal(auth.passwordMatches('s3cre'), false);
  assert.equal(auth.passwordMatches(''), false);
  const cookie = auth.newSession();
  assert.match(cookie, /^snabbvm_vm1_8006=[\w-]{43}; /);
  assert.match(cookie, /HttpOnly/);
  assert.match(cookie, /SameSite=Strict/);
  assert.match(cookie, /Max-Age=43200/, 'a login lasts 12 hours');
  assert.equal(await auth.authorize(request({ cookie: `other=1; ${cookieOf(cookie)}` })), 'ok');
  assert.equal(await auth.authorize(request({ cookie: 'snabbvm_vm1_8006=forged' })), 'denied');
  assert.equal(await auth.authorize(request({ cookie: `snabbvm_vm2_8007=${cookieOf(cookie).split('=')[1]}` })), 'denied', "another VM's cookie name");
  assert.equal(await auth.authorize(request({ authorization: 'Bearer s3cret' })), 'ok');
  assert.equal(await auth.authorize(request({ authorization: 'Bearer nope' })), 'denied');
});

test('each login gets a token of its own; a logout ends only that one; a token expires', async () => {
  const auth = new WebAuth('s3cret', 'c', { sessionTtlMs: 150 });
  const [a, b] = [cookieOf(auth.newSession()), cookieOf(auth.newSession())];
  assert.notEqual(a, b);
  assert.equal(await auth.authorize(request({ cookie: a })), 'ok');
  assert.match(auth.endSession(request({ cookie: a })), /^c=; Path=\/; Max-Age=0/);
  assert.equal(await auth.authorize(request({ cookie: a })), 'denied', 'logged out');
  assert.equal(await auth.authorize(request({ cookie: b })), 'ok', 'the other login is still in');
  await sleep(200);
  assert.equal(await auth.authorize(request({ cookie: b })), 'denied', 'expired');
});

test("the cookie's name is the VM's and the port's, so two consoles on one host keep their own", () => {
  assert.equal(sessionCookieName('vm1', 8006), 'snabbvm_vm1_8006');
  assert.notEqual(sessionCookieName('vm1', 8006), sessionCookieName('vm2', 8007));
  assert.notEqual(sessionCookieName('vm1', 8006), sessionCookieName('vm1', 8007));
  assert.equal(sessionCookieName('web.1', 8006), 'snabbvm_web_1_8006', 'only characters a cookie name may hold');
});

test('guesses, however many at once, are checked one at a time and slowed; a right password still gets in', async () => {
  const limiter = new GuessLimiter({ burst: 3, refillMs: 100, maxWaiting: 5 });
  const auth = new WebAuth('s3cret', 'c', { limiter });
  const started = Date.now();
  const verdicts = await Promise.all(Array.from({ length: 50 }, (_, i) => auth.checkPassword(`guess${i}`)));
  const elapsed = Date.now() - started;
  const checked = verdicts.filter((v) => v === 'denied').length;
  assert.equal(verdicts.filter((v) => v === 'busy').length, 50 - checked, 'the rest refused unchecked');
  assert.ok(checked <= 3 + Math.ceil(elapsed / 100) + 1, `${checked} guesses checked in ${elapsed} ms: at most the burst and one per 100 ms`);
  assert.ok(checked >= 3 && checked <= 5, `${checked} checked: the burst, then as many as may wait`);
  assert.equal(await auth.checkPassword('s3cret'), 'ok');
});

test('Host must be a name the server knows: an address, localhost, its own name, or a --web-host name', () => {
  const hosts = new HostCheck('0.0.0.0', ['vm1.example.com']);
  for (const known of ['localhost:8006', 'LOCALHOST', '127.0.0.1:8006', '[::1]:8006', '172.17.0.2:8006', '203.0.113.9', 'vm1.example.com', 'VM1.Example.com:443']) {
    assert.deepEqual(hosts.check(request({ host: known })), { ok: true }, known);
  }
  for (const unknown of ['evil.example:8006', 'evil.example', 'vm1.example.com.evil.example', '127.0.0.1.evil.example', 'localhost@evil.example', '']) {
    assert.equal(hosts.check(request({ host: unknown })).ok, false, unknown);
  }
  assert.equal(hosts.check(request({})).ok, false, 'no Host at all');
  assert.deepEqual(new HostCheck('vm-listen-name').check(request({ host: 'vm-listen-name:8006' })), { ok: true }, 'the listen address, when a name');
  assert.equal(hostName('[::1]:80'), '[::1]');
  assert.equal(hostName('a.b:1:2'), undefined);
});

test('Origin must be our own host, or a --web-host name, when a browser sends one', () => {
  assert.equal(originAllowed(request({ host: 'vm:8006' })), true, 'no Origin: not a browser');
  assert.equal(originAllowed(request({ host: 'vm:8006', origin: 'http://vm:8006' })), true);
  assert.equal(originAllowed(request({ host: 'vm:8006', origin: 'http://evil.example' })), false);
  assert.equal(originAllowed(request({ host: 'vm:8006', origin: 'http://vm:9999' })), false);
  assert.equal(originAllowed(request({ host: 'vm:8006', origin: 'null' })), false);
  assert.equal(originAllowed(request({ host: '127.0.0.1:8006', origin: 'https://console.example.com' }), ['console.example.com']), true, 'behind a proxy that rewrites Host');
  assert.equal(originAllowed(request({ host: '127.0.0.1:8006', origin: 'https://evil.example' }), ['console.example.com']), false);
});

test('cookies are parsed by name', () => {
  assert.deepEqual(parseCookies('a=1; b = two ;c=x=y'), { a: '1', b: 'two', c: 'x=y' });
  assert.deepEqual(parseCookies(undefined), {});
});
