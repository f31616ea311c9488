/**
 * User-data validation under fuzzing (fast-check). Properties:
 * - total: any bytes (raw, gzip-compressed, or behind a #cloud-config header) give ok or a one-line message that
 *   starts with "user-data FILE"; nothing is thrown, and no input takes long;
 * - a cloud-config made of plain keys, strings, numbers and lists is accepted, and reads back as what was written;
 * - one defect in such a cloud-config gets it refused, at the right line: an unclosed quote, a tab before a key,
 *   a byte that is not UTF-8, a control character, a second document, a list at the top.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { validateUserData } from './validate-user-data.js';

const FILE = '/u/user-data.yaml';

function check(bytes: Buffer): ReturnType<typeof validateUserData> {
  const started = performance.now();
  const result = validateUserData(bytes, FILE);
  assert.ok(performance.now() - started < 2000, `took ${Math.round(performance.now() - started)} ms for ${bytes.length} bytes`);
  if (!result.ok) {
    assert.ok(result.message.startsWith(`user-data ${FILE} `), result.message);
    assert.ok(!/[\r\n]/.test(result.message), `two lines: ${JSON.stringify(result.message)}`);
  }
  return result;
}

const yamlish = fc.string({ unit: fc.constantFrom(...' \t\n:-#[]{}\'",&*!|>?%@`abcx01\r'.split('')), maxLength: 120 });

test('any input gives ok or one line naming the file; nothing throws or hangs', () => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
        yamlish.map((t) => Buffer.from(`#cloud-config\n${t}`)),
        fc.string({ unit: 'binary', maxLength: 100 }).map((t) => Buffer.from(`#cloud-config\n${t}`)),
        yamlish.map((t) => gzipSync(`#cloud-config\n${t}`)),
        fc.uint8Array({ maxLength: 100 }).map((b) => Buffer.concat([gzipSync('x').subarray(0, 10), Buffer.from(b)])),
        fc.constantFrom('#!/bin/sh\r\necho hi\r\n', '#include\nhttp://x\n', 'Content-Type: multipart/mixed\nMIME-Version: 1.0\n', '\ufeff#cloud-config\n', '  #cloud-config\na: 1').map((t) => Buffer.from(t)),
      ),
      (bytes) => void check(bytes),
    ),
    { numRuns: 3000 },
  );
});

// a cloud-config of plain parts: keys a-z, values strings/numbers/lists of strings
// prefixed: YAML 1.1 reads a bare y, n, on, off, ... as a boolean
const key = fc.stringMatching(/^[a-z][a-z_]{0,10}$/).map((k) => `k_${k}`);
const word = fc.stringMatching(/^[a-z][a-z0-9 ]{0,15}[a-z0-9]$/);
const scalar = fc.oneof(word, fc.integer({ min: 0, max: 10 ** 6 }));
const entry = fc.tuple(key, fc.oneof(scalar, fc.array(word, { minLength: 1, maxLength: 3 })));
const config = fc.uniqueArray(entry, { minLength: 1, maxLength: 6, selector: ([k]) => k });
const render = (entries: [string, string | number | string[]][]) =>
  entries.map(([k, v]) => (Array.isArray(v) ? `${k}:\n${v.map((w) => `  - "${w}"`).join('\n')}` : typeof v === 'number' ? `${k}: ${v}` : `${k}: "${v}"`));

test('a cloud-config of plain keys, strings, numbers and lists is accepted and reads back as written', () => {
  fc.assert(
    fc.property(config, (entries) => {
      const result = check(Buffer.from(`#cloud-config\n${render(entries).join('\n')}\n`));
      assert.ok(result.ok, !result.ok ? result.message : '');
      assert.deepEqual(result.check.cloudConfig?.toJS(), Object.fromEntries(entries));
    }),
    { numRuns: 500 },
  );
});

test('one defect in a plain cloud-config gets it refused at its line', () => {
  // [what, the line, why it is refused, whether it must be the last line (a quote left open runs on to the next quote)]
  const defects: [string, string, RegExp, boolean][] = [
    ['an unclosed quote', 'broken: "never closed', /double-quoted string is never closed/, true],
    ['a tab before a key', '\tindented: 1', /tab/, false],
    ['a byte that is not UTF-8', 'latin: caf\xe9', /is not UTF-8/, false],
    ['a control character', 'bell: a\x07b', /U\+0007 is not allowed/, false],
  ];
  fc.assert(
    fc.property(config, fc.nat(), fc.constantFrom(...defects), (entries, at, [, defect, why, last]) => {
      const lines = render(entries).join('\n').split('\n');
      const index = last ? lines.length : at % (lines.length + 1);
      // a whole top-level entry boundary: before an unindented line, or at the end
      const boundary = lines.findIndex((l, i) => i >= index && !l.startsWith(' '));
      const insertAt = boundary === -1 ? lines.length : boundary;
      lines.splice(insertAt, 0, defect);
      const text = `#cloud-config\n${lines.join('\n')}\n`;
      const bytes = Buffer.from(text, 'latin1');
      const result = check(bytes);
      assert.ok(!result.ok, `accepted: ${JSON.stringify(text)}`);
      assert.match(result.message, why);
      assert.match(result.message, new RegExp(`line ${insertAt + 2}\\b`), result.message);
    }),
    { numRuns: 800 },
  );
  fc.assert(
    fc.property(config, config, (a, b) => {
      assert.ok(!check(Buffer.from(`#cloud-config\n${render(a).join('\n')}\n---\n${render(b).join('\n')}\n`)).ok, 'a second document');
      assert.ok(!check(Buffer.from(`#cloud-config\n- ${render(a)[0]!.split('\n')[0]}\n`)).ok, 'a list at the top');
    }),
    { numRuns: 300 },
  );
});
