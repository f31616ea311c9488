import assert from 'node:assert/strict';
import { test } from 'node:test';
import { proxyForUrl, proxyFromEnv } from './http-get.js';

test('proxies from the environment: lower case first, a bare host:port is http, https:// proxies refused', () => {
  assert.equal(proxyFromEnv({}), undefined);
  assert.deepEqual(proxyFromEnv({ HTTP_PROXY: 'http://a:1', http_proxy: 'b:2', HTTPS_PROXY: 'http://u:p@c:3', NO_PROXY: 'x', no_proxy: 'Y, .z' }), {
    http: 'http://b:2/',
    https: 'http://u:p@c:3/',
    noProxy: ['y', '.z'],
  });
  assert.throws(() => proxyFromEnv({ HTTPS_PROXY: 'https://u:secret@c:3' }), (err: Error) => /^HTTPS_PROXY=https:\/\/u:\*\*\*@c:3 is not a proxy URL snabbvm can use/.test(err.message) && !/secret/.test(err.message));
  assert.throws(() => proxyFromEnv({ http_proxy: 'http://[oops' }), /http_proxy=http:\/\/\[oops is not a proxy URL/);
  assert.throws(() => proxyFromEnv({ http_proxy: 'socks5://u:secret@h:1' }), (err: Error) => /^http_proxy=socks5:\/\/u:\*\*\*@h:1 is not a proxy URL snabbvm can use/.test(err.message));
  assert.throws(() => proxyFromEnv({ http_proxy: 'u:secret@[oops' }), (err: Error) => /^http_proxy=u:\*\*\*@\[oops is not a proxy URL;/.test(err.message));
});

test('NO_PROXY: names match themselves and their subdomains, host:port only that port, * everything', () => {
  const settings = proxyFromEnv({ http_proxy: 'p:3128', https_proxy: 'p:3129', no_proxy: 'example.com,.internal,10.0.0.1,mirror:8080,[::1]' })!;
  const via = (url: string) => proxyForUrl(new URL(url), settings)?.port;
  assert.equal(via('http://example.com/a'), undefined);
  assert.equal(via('https://cdn.example.com/a'), undefined);
  assert.equal(via('http://notexample.com/a'), '3128');
  assert.equal(via('http://a.internal/x'), undefined);
  assert.equal(via('http://10.0.0.1/x'), undefined);
  assert.equal(via('http://10.0.0.10/x'), '3128');
  assert.equal(via('http://mirror:8080/x'), undefined);
  assert.equal(via('http://mirror/x'), '3128');
  assert.equal(via('http://[::1]:8000/x'), undefined);
  assert.equal(via('https://debian.org/x'), '3129');
  assert.equal(proxyForUrl(new URL('https://a/'), proxyFromEnv({ https_proxy: 'p:1', NO_PROXY: '*' })), undefined);
  assert.equal(proxyForUrl(new URL('https://a/'), proxyFromEnv({ http_proxy: 'p:1' })), undefined, 'no https proxy: direct');
});
