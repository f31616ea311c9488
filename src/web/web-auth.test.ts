import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { test } from 'node:test';
import { originAllowed, parseCookies, SESSION_COOKIE, WebAuth } from './web-auth.js';

const request = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage;

test('without a password everyone is let in', () => {
  const auth = new WebAuth(undefined);
  assert.equal(auth.required, false);
  assert.equal(auth.isAuthorized(request({})), true);
});

test('with a password: the session cookie from a login, or the password as a bearer token', () => {
  const auth = new WebAuth('s3cret');
  assert.equal(auth.isAuthorized(request({})), false);
  assert.equal(auth.passwordMatches('s3cret'), true);
  assert.equal(auth.passwordMatches('s3cre'), false);
  assert.equal(auth.passwordMatches(''), false);
  const cookie = auth.sessionCookie();
  assert.match(cookie, /HttpOnly/);
  assert.match(cookie, /SameSite=Strict/);
  assert.equal(auth.isAuthorized(request({ cookie: `other=1; ${cookie.split(';')[0]}` })), true);
  assert.equal(auth.isAuthorized(request({ cookie: `${SESSION_COOKIE}=forged` })), false);
  assert.equal(auth.isAuthorized(request({ authorization: 'Bearer s3cret' })), true);
  assert.equal(auth.isAuthorized(request({ authorization: 'Bearer nope' })), false);
  assert.notEqual(new WebAuth('s3cret').token, auth.token, 'each launcher hands out its own token');
});

test('Origin must be our own host when a browser sends one', () => {
  assert.equal(originAllowed(request({ host: 'vm:8006' })), true, 'no Origin: not a browser');
  assert.equal(originAllowed(request({ host: 'vm:8006', origin: 'http://vm:8006' })), true);
  assert.equal(originAllowed(request({ host: 'vm:8006', origin: 'http://evil.example' })), false);
  assert.equal(originAllowed(request({ host: 'vm:8006', origin: 'http://vm:9999' })), false);
  assert.equal(originAllowed(request({ host: 'vm:8006', origin: 'null' })), false);
});

test('cookies are parsed by name', () => {
  assert.deepEqual(parseCookies('a=1; b = two ;c=x=y'), { a: '1', b: 'two', c: 'x=y' });
  assert.deepEqual(parseCookies(undefined), {});
});
