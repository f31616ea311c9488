import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ChunkedDecoder, parseResponseHead } from './http-framing.js';

test('a response head: status, text, headers in lower case, repeats joined', () => {
  const head = parseResponseHead('HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 5-9/10\r\nETag:"x"\r\nVia: a\r\nvia: b');
  assert.deepEqual(head, { status: 206, statusText: 'Partial Content', headers: { 'content-range': 'bytes 5-9/10', etag: '"x"', via: 'a, b' } });
  assert.deepEqual(parseResponseHead('HTTP/1.0 200'), { status: 200, statusText: '', headers: {} });
  assert.throws(() => parseResponseHead('SSH-2.0-OpenSSH_9.2'), /not HTTP\/1\.x/);
  assert.throws(() => parseResponseHead('HTTP/1.1 200 OK\r\nno colon here'), /malformed header line/);
});

/** Feeds `wire` to a decoder cut at the given offsets; returns the body and whether it ended. */
function decode(wire: string, cuts: number[]): { body: string; done: boolean; after: string } {
  const decoder = new ChunkedDecoder();
  const bytes = Buffer.from(wire, 'latin1');
  let body = '';
  let after = '';
  let from = 0;
  for (const to of [...cuts, bytes.length]) {
    let input: Buffer = bytes.subarray(from, to);
    from = to;
    while (input.length > 0) {
      if (decoder.done) {
        after += input.toString('latin1');
        break;
      }
      const { piece, rest } = decoder.take(input);
      body += piece.toString('latin1');
      input = rest;
    }
  }
  return { body, done: decoder.done, after };
}

test('a chunked body is decoded wherever the reads cut it', () => {
  const wire = '5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n';
  for (let a = 0; a <= wire.length; a++) {
    for (const b of [a, a + 1, a + 3]) {
      const cuts = [a, Math.min(b, wire.length)];
      assert.deepEqual(decode(wire, cuts), { body: 'hello 0123456789', done: true, after: '' }, `cut at ${cuts}`);
    }
  }
  // bytes after the end are left alone
  assert.deepEqual(decode('3\r\nabc\r\n0\r\n\r\nextra', []), { body: 'abc', done: true, after: 'extra' });
  // a body not ended yet
  assert.deepEqual(decode('3\r\nabc\r\n4\r\nde', []), { body: 'abcde', done: false, after: '' });
});

test('a malformed chunked body is an error', () => {
  assert.throws(() => decode('zz\r\nabc\r\n', []), /bad chunk size/);
  assert.throws(() => decode('3\r\nabcdef\r\n', []), /data past a chunk/);
  assert.throws(() => decode('1'.repeat(5000), []), /line too long/);
});
