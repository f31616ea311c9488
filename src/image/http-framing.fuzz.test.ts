/**
 * Property tests (fast-check) of the HTTP framing a download relies on: no input hangs, throws anything but a
 * plain Error with a message, or is accepted when malformed. Each property runs a few hundred inputs; the whole
 * file takes a few seconds.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import fc from 'fast-check';
import { bodyFraming, ChunkedDecoder, parseResponseHead } from './http-framing.js';
import { httpGet } from './http-get.js';

/** latin1 text of any bytes, weighted towards the characters HTTP cares about */
const wireChar = fc.oneof(fc.constantFrom('\r', '\n', ':', ' ', '\t', ';', ',', '0', '5', 'a', 'F', '-', 'x', '\0', '\x7f', 'é'), fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c)));
const wireText = (maxLength: number) => fc.array(wireChar, { maxLength }).map((a) => a.join(''));

/** Runs f; a thrown value must be an Error with a message (what the downloader wraps as a NetworkError). */
function settles<T>(f: () => T): { value?: T; error?: Error } {
  try {
    return { value: f() };
  } catch (err) {
    assert.ok(err instanceof Error && err.message.length > 0, `threw ${String(err)}`);
    return { error: err };
  }
}

test('a response head: anything parses or throws an Error; what parses has a valid status and valid headers', () => {
  const headLike = fc.tuple(fc.constantFrom('HTTP/1.1 200 OK', 'HTTP/1.0 206 Partial', 'HTTP/1.1 404', 'HTTP/1.1 2000 OK', 'HTTP/2 200 OK', ''), fc.array(wireText(30), { maxLength: 6 }));
  fc.assert(
    fc.property(fc.oneof(wireText(200), headLike.map(([s, h]) => [s, ...h].join('\r\n'))), (text) => {
      const { value } = settles(() => parseResponseHead(text));
      if (!value) return;
      assert.ok(value.status >= 100 && value.status <= 999);
      for (const [name, v] of Object.entries(value.headers)) {
        assert.match(name, /^[!#$%&'*+.^_`|~0-9a-z-]+$/);
        assert.doesNotMatch(v, /[\0-\x08\x0a-\x1f\x7f]/);
      }
    }),
    { numRuns: 2000 },
  );
});

test('Content-Length: only digits are a length; any other value, or two of them, is refused', () => {
  fc.assert(
    fc.property(fc.oneof(wireText(12), fc.integer({ min: -10, max: 1e6 }).map(String), fc.constantFrom('-1', '', '0x5', '5, 11', '5, 5', '+5', '5.0', '1e3', ' ')), (value) => {
      const trimmed = value.replace(/^[\t ]+|[\t ]+$/g, '');
      const head = settles(() => parseResponseHead(`HTTP/1.1 200 OK\r\nContent-Length: ${value}`));
      if (!head.value) return; // a control character in the value: refused already
      const framing = settles(() => bodyFraming(head.value!));
      if (/^\d{1,15}$/.test(trimmed)) assert.deepEqual(framing.value, { kind: 'length', length: Number(trimmed) });
      else assert.ok(framing.error, `accepted Content-Length ${JSON.stringify(value)}`);
    }),
    { numRuns: 2000 },
  );
});

test('Transfer-Encoding: only chunked is taken, and never together with Content-Length', () => {
  fc.assert(
    fc.property(wireText(12), fc.option(fc.nat({ max: 100 }).map(String)), (te, cl) => {
      const head = settles(() => parseResponseHead(`HTTP/1.1 200 OK\r\nTransfer-Encoding: ${te}${cl === null ? '' : `\r\nContent-Length: ${cl}`}`));
      if (!head.value) return;
      const framing = settles(() => bodyFraming(head.value!));
      if (cl === null && /^chunked$/i.test(te.replace(/^[\t ]+|[\t ]+$/g, ''))) assert.deepEqual(framing.value, { kind: 'chunked' });
      else assert.ok(framing.error, `accepted Transfer-Encoding ${JSON.stringify(te)} with Content-Length ${cl}`);
    }),
    { numRuns: 1000 },
  );
});

/** Feeds all of `bytes`, cut at `cuts`, to a decoder; stops at its end. Every call must make progress. */
function decodeAll(bytes: Buffer, cuts: number[]): { body: Buffer; done: boolean } {
  const decoder = new ChunkedDecoder();
  const body: Buffer[] = [];
  let from = 0;
  for (const to of [...cuts.filter((c) => c < bytes.length).sort((a, b) => a - b), bytes.length]) {
    let input = bytes.subarray(from, Math.max(from, to));
    from = Math.max(from, to);
    while (input.length > 0 && !decoder.done) {
      const { piece, rest } = decoder.take(input);
      assert.ok(rest.length < input.length || piece.length > 0, 'take() made no progress');
      body.push(Buffer.from(piece));
      input = rest;
    }
  }
  return { body: Buffer.concat(body), done: decoder.done };
}

test('chunked bodies: any bytes, cut anywhere, end or throw an Error, never loop', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.array(fc.nat({ max: 300 }), { maxLength: 5 }), (bytes, cuts) => {
      settles(() => decodeAll(Buffer.from(bytes), cuts));
    }),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(fc.array(fc.constantFrom('5\r\n', 'hello', '\r\n', '0\r\n', ';x=y', '\n', ' ', '-1', '0x5', 'g', 'X-T: 1\r\n', 'ffffffffffffffff\r\n'), { maxLength: 12 }), fc.array(fc.nat({ max: 80 }), { maxLength: 4 }), (parts, cuts) => {
      settles(() => decodeAll(Buffer.from(parts.join(''), 'latin1'), cuts));
    }),
    { numRuns: 2000 },
  );
});

test('chunked bodies: a well-formed one, cut anywhere, gives back exactly its data', () => {
  const chunk = fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 40 }), fc.constantFrom('', ';ext', ';a=b;c="d"'), fc.boolean());
  fc.assert(
    fc.property(fc.array(chunk, { maxLength: 6 }), fc.constantFrom('', 'X-Trailer: 1\r\n'), fc.array(fc.nat({ max: 400 }), { maxLength: 6 }), (chunks, trailer, cuts) => {
      const wire = Buffer.concat([
        ...chunks.flatMap(([data, ext, upper]) => {
          const size = data.length.toString(16);
          return [Buffer.from(`${upper ? size.toUpperCase() : size}${ext}\r\n`), Buffer.from(data), Buffer.from('\r\n')];
        }),
        Buffer.from(`0\r\n${trailer}\r\n`),
      ]);
      const { body, done } = decodeAll(wire, cuts);
      assert.equal(done, true);
      assert.deepEqual(body, Buffer.concat(chunks.map(([d]) => Buffer.from(d))));
    }),
    { numRuns: 1000 },
  );
});

test('chunk size lines: only hex digits (and an extension) are a size', () => {
  fc.assert(
    fc.property(fc.oneof(wireText(10), fc.constantFrom('-1', '0x5', ' 5', '5 ', '', '5;', '+5', 'fffffffffffffff')), (line) => {
      if (line.includes('\n')) return;
      const { error } = settles(() => decodeAll(Buffer.from(`${line}\r\nhello\r\n0\r\n\r\n`, 'latin1'), []));
      const valid = /^[0-9a-fA-F]{1,13}(;[\t\x20-\x7e\x80-\xff]*)?$/.test(line);
      if (!valid) assert.ok(error, `accepted the chunk size line ${JSON.stringify(line)}`);
    }),
    { numRuns: 2000 },
  );
});

test('through a real socket: any response settles (accepted or refused) within the stall timeout', { timeout: 60_000 }, async () => {
  let current = Buffer.alloc(0);
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    socket.once('data', () => socket.end(current));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/x`;
  const options = { connectTimeoutMs: 2000, stallTimeoutMs: 2000, maxRedirects: 0 };
  const response = fc.tuple(
    fc.constantFrom('HTTP/1.1 200 OK', 'HTTP/1.1 206 Partial Content', 'HTTP/1.0 200', 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK'),
    fc.array(fc.oneof(fc.constantFrom('Content-Length: 5', 'Content-Length: -1', 'Content-Length: 0x5', 'Content-Length: ', 'Transfer-Encoding: chunked', 'Content-Length: 5, 11'), wireText(20)), { maxLength: 4 }),
    fc.oneof(fc.constantFrom('hello', '5\r\nhello\r\n0\r\n\r\n', ''), wireText(40)),
  );
  try {
    await fc.assert(
      fc.asyncProperty(response, async ([status, headers, body]) => {
        current = Buffer.from(`${[status, ...headers].join('\r\n')}\r\n\r\n${body}`, 'latin1');
        const started = Date.now();
        try {
          const r = await httpGet(url, {}, options);
          await r.readBody(() => {});
        } catch (err) {
          assert.ok(err instanceof Error && err.message.length > 0);
        }
        assert.ok(Date.now() - started < 5000, 'settled within the stall timeout');
      }),
      { numRuns: 150 },
    );
  } finally {
    server.close();
  }
});
