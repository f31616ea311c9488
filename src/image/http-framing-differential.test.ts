/**
 * Differential test of the downloader's HTTP framing against Node's own parser (llhttp, through node:http): a raw
 * server on 127.0.0.1 sends crafted responses, each read once by node:http and once by httpGet. We never accept
 * what llhttp rejects; every malformed response here is refused by us, and the well-formed controls are accepted
 * by both (so the harness itself is checked).
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { finished } from 'node:stream/promises';
import { after, before, test } from 'node:test';
import { httpGet } from './http-get.js';

const OK = 'HTTP/1.1 200 OK';
/** a response head and body, lines joined with CRLF */
const response = (lines: string[], body = '') => `${lines.join('\r\n')}\r\n\r\n${body}`;
const withLength = (value: string) => response([OK, `Content-Length: ${value}`], 'hello');
const chunkedBody = (body: string) => response([OK, 'Transfer-Encoding: chunked'], body);
const withHeader = (line: string) => response([OK, line, 'Content-Length: 5'], 'hello');
const withStatus = (line: string) => response([line, 'Content-Length: 5'], 'hello');

const malformed: [string, string][] = [
  ...['-1', '', '0x5', '5, 11', '5, 5', '5,5', '+5', '5.0', '1e1', '5a', 'five', '0x', '-0', '5 5', '99999999999999999999', '\u0665', '5\0', '0b101', '５', '5;', '"5"', '5 ,', ', 5', '- 5'].map(
    (v): [string, string] => [`Content-Length: ${JSON.stringify(v)}`, withLength(v)],
  ),
  ['two Content-Length headers, equal', response([OK, 'Content-Length: 5', 'Content-Length: 5'], 'hello')],
  ['two Content-Length headers, different', response([OK, 'Content-Length: 5', 'Content-Length: 6'], 'hello')],
  ['Content-Length with Transfer-Encoding: chunked', response([OK, 'Content-Length: 5', 'Transfer-Encoding: chunked'], '5\r\nhello\r\n0\r\n\r\n')],
  ['Transfer-Encoding: chunked with Content-Length after it', response([OK, 'Transfer-Encoding: chunked', 'Content-Length: 100'], '5\r\nhello\r\n0\r\n\r\n')],
  ...['gzip', 'chunked, gzip', 'chunkedx', 'identity', 'chunked chunked', '"chunked"', 'chunked;q=1'].map((te): [string, string] => [
    `Transfer-Encoding: ${te}`,
    response([OK, `Transfer-Encoding: ${te}`], '5\r\nhello\r\n0\r\n\r\n'),
  ]),
  ...['-1', '0x5', ' 5', 'g', '', 'fffffffffffffffffff', '5 ;ext', '5\tx', '+5', '5 5'].map((size): [string, string] => [
    `chunk size ${JSON.stringify(size)}`,
    chunkedBody(`${size}\r\nhello\r\n0\r\n\r\n`),
  ]),
  ['chunk data longer than its size', chunkedBody('5\r\nhelloX\r\n0\r\n\r\n')],
  ['chunk data shorter than its size, then the connection ends', chunkedBody('9\r\nhello')],
  ['chunk lines ending in a bare LF', chunkedBody('5\nhello\n0\n\n')],
  ['no last chunk, then the connection ends', chunkedBody('5\r\nhello\r\n')],
  ['a malformed trailer', chunkedBody('5\r\nhello\r\n0\r\nno colon\r\n\r\n')],
  ['a trailer with a control character', chunkedBody('5\r\nhello\r\n0\r\nX-T: a\x01b\r\n\r\n')],
  ['a folded header line (obs-fold)', withHeader('X-A: a\r\n b')],
  ['a space before the colon', response([OK, 'Content-Length : 5'], 'hello')],
  ['a header line without a colon', withHeader('no colon here')],
  ['a NUL in a header value', withHeader('X-A: a\0b')],
  ['a bare CR in a header value', withHeader('X-A: a\rb')],
  ['a bare LF in a header value', withHeader('X-A: a\nb')],
  ['an empty header name', withHeader(': x')],
  ['a space in a header name', withHeader('X A: b')],
  ['a non-ASCII header name', withHeader('\u00c4: b')],
  ['a control character in a header value', withHeader('X-A: a\x01b')],
  ['DEL in a header value', withHeader('X-A: a\x7fb')],
  ['a tab in a header name', withHeader('X\tA: b')],
  ['a header name with a slash', withHeader('X/A: b')],
  ['a two-digit status', withStatus('HTTP/1.1 20 OK')],
  ['a four-digit status', withStatus('HTTP/1.1 2000 OK')],
  ['HTTP/2 in the status line', withStatus('HTTP/2 200 OK')],
  ['a status that is not a number', withStatus('HTTP/1.1 abc OK')],
  ['two spaces before the status', withStatus('HTTP/1.1  200 OK')],
  ['not HTTP at all (ICY)', withStatus('ICY 200 OK')],
  ['a lower-case protocol name', withStatus('http/1.1 200 OK')],
  ['a NUL in the reason phrase', withStatus('HTTP/1.1 200 O\0K')],
  ['no space after the version', withStatus('HTTP/1.1200 OK')],
  ['a status line only, then the connection ends', 'HTTP/1.1 200 OK\r\n'],
  ['a head without its blank line, then the connection ends', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n'],
  ['nothing at all', ''],
  ['a body shorter than its Content-Length, then the connection ends', response([OK, 'Content-Length: 10'], 'hello')],
  ['an SSH banner', 'SSH-2.0-OpenSSH_9.2\r\n'],
  ['binary garbage', '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03'],
  ['a head ending in bare LFs', 'HTTP/1.1 200 OK\nContent-Length: 5\n\nhello'],
];

const wellFormed: [string, string][] = [
  ['Content-Length', withLength('5')],
  ['Content-Length with spaces around it', response([OK, 'Content-Length:   5  '], 'hello')],
  ['a chunked body with an extension and a trailer', chunkedBody('5;name=value\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n')],
  ['a body that ends with the connection', response([OK, 'Connection: close'], 'hello')],
  ['Transfer-Encoding in capitals', response([OK, 'Transfer-Encoding: CHUNKED'], '5\r\nhello\r\n0\r\n\r\n')],
  ['an empty reason phrase', withStatus('HTTP/1.1 200 ')],
  ['100 Continue first', `HTTP/1.1 100 Continue\r\n\r\n${withLength('5')}`],
  ['obs-text in a value', withHeader('X-A: caf\u00e9')],
];

let server: net.Server;
let base: string;
const all = [...malformed, ...wellFormed];

before(async () => {
  server = net.createServer((socket) => {
    socket.on('error', () => {});
    let head = '';
    socket.on('data', (b) => {
      head += b.toString('latin1');
      const m = /^GET \/(\d+) /.exec(head);
      if (m && head.includes('\r\n\r\n')) socket.end(Buffer.from(all[Number(m[1])]![1], 'latin1'));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
});
after(() => server.close());

/** node:http reads the whole response without an error. */
async function nodeAccepts(url: string): Promise<boolean> {
  try {
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => http.get(url, { agent: false }, resolve).on('error', reject));
    res.resume();
    await finished(res);
    return res.complete;
  } catch {
    return false;
  }
}

async function weAccept(url: string): Promise<boolean> {
  try {
    const r = await httpGet(url, {}, { connectTimeoutMs: 5000, stallTimeoutMs: 5000, maxRedirects: 0 });
    await r.readBody(() => {});
    return true;
  } catch {
    return false;
  }
}

test(`${malformed.length} malformed responses: none is accepted, and none that node:http (llhttp) rejects`, { timeout: 60_000 }, async () => {
  assert.ok(malformed.length >= 60, `${malformed.length} cases`);
  const ours: string[] = [];
  let nodeRejected = 0;
  for (const [i, [what]] of malformed.entries()) {
    const node = await nodeAccepts(`${base}/${i}`);
    const we = await weAccept(`${base}/${i}`);
    if (!node) nodeRejected++;
    if (we) ours.push(`${what}${node ? '' : ' (node:http rejects it too)'}`);
  }
  console.log(`node:http rejected ${nodeRejected} of ${malformed.length} malformed responses; snabbvm rejected ${malformed.length - ours.length}`);
  assert.deepEqual(ours, [], 'accepted by snabbvm');
});

test('well-formed responses are accepted by both (the harness works)', { timeout: 30_000 }, async () => {
  for (const [i, [what]] of wellFormed.entries()) {
    const url = `${base}/${malformed.length + i}`;
    assert.equal(await nodeAccepts(url), true, `node:http: ${what}`);
    assert.equal(await weAccept(url), true, `snabbvm: ${what}`);
  }
});
