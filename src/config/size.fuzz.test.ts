/**
 * parseSize under fuzzing (fast-check). Properties:
 * - total: for any string it returns undefined or a safe integer >= 0, never throws, and takes linear time;
 * - accepted sizes are exact: `<ws>N[.F]<ws>[KMGT][B|iB]<ws>` in any case is N.F times the unit, rounded to a byte;
 * - formatSize round-trips: parseSize(formatSize(b)) is b when b is a whole number of its unit, else within a 20th of the unit;
 * - malformed is refused: a sign, an exponent, hex, a lone or second dot, or any other character gives undefined.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { formatSize, parseSize } from './size.js';

const UNIT = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 } as const;
const ws = fc.string({ unit: fc.constantFrom(' ', '\t'), maxLength: 3 });
const sizeAlphabet = fc.constantFrom(...'0123456789.KMGTkmgtIiBb \t-+eEx,'.split(''));

test('parseSize is total: undefined or a safe non-negative integer, for any string', () => {
  fc.assert(
    fc.property(fc.oneof(fc.string({ unit: 'binary' }), fc.string({ unit: sizeAlphabet, maxLength: 40 })), fc.constantFrom('B' as const, 'M' as const), (text, bare) => {
      const bytes = parseSize(text, bare);
      assert.ok(bytes === undefined || (Number.isSafeInteger(bytes) && bytes >= 0), `${JSON.stringify(text)} gave ${bytes}`);
    }),
    { numRuns: 2000 },
  );
});

test('parseSize takes linear time: 100k spaces between a number and a bad unit answer at once', () => {
  for (const text of ['1' + ' '.repeat(100_000) + 'x', ' '.repeat(100_000) + '1x', '1' + ' '.repeat(100_000) + 'G' + ' '.repeat(100_000) + 'x', '9'.repeat(100_000) + 'q']) {
    const started = performance.now();
    assert.equal(parseSize(text), undefined);
    assert.ok(performance.now() - started < 200, `took ${Math.round(performance.now() - started)} ms for ${text.length} characters`);
  }
});

test('an accepted size is exact: N[.F] times its unit, whatever the case, suffix and white space', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 10 ** 6 }),
      fc.option(fc.stringMatching(/^[0-9]{1,3}$/), { nil: undefined }),
      fc.constantFrom(...(Object.keys(UNIT) as (keyof typeof UNIT)[])),
      fc.constantFrom('', 'B', 'iB', 'b', 'ib', 'IB'),
      fc.boolean(),
      ws, ws, ws,
      (whole, fraction, unit, suffix, lower, ws1, ws2, ws3) => {
        const unitText = lower ? unit.toLowerCase() : unit;
        // a suffix with no unit is plain bytes ("512B"); "iB" alone is no unit at all
        if (unit === '' && suffix.toLowerCase() === 'ib') return;
        const text = `${ws1}${whole}${fraction !== undefined ? `.${fraction}` : ''}${ws2}${unitText}${suffix}${ws3}`;
        const expected = Math.round(Number(`${whole}${fraction !== undefined ? `.${fraction}` : ''}`) * UNIT[unit]);
        assert.equal(parseSize(text), Number.isSafeInteger(expected) ? expected : undefined, JSON.stringify(text));
      },
    ),
    { numRuns: 2000 },
  );
});

test('formatSize round-trips through parseSize', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 2 ** 50 }), (bytes) => {
      const text = formatSize(bytes);
      const back = parseSize(text)!;
      const unit = UNIT[(/[KMGT]/.exec(text)?.[0] ?? '') as keyof typeof UNIT];
      if (!text.includes('.')) assert.equal(back, bytes, `${bytes} → ${text} → ${back}`);
      assert.ok(Math.abs(back - bytes) <= unit / 20, `${bytes} → ${text} → ${back}`);
    }),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 1023 }), fc.constantFrom('K', 'M', 'G', 'T') as fc.Arbitrary<keyof typeof UNIT>, (n, unit) => {
      assert.equal(parseSize(formatSize(n * UNIT[unit])), n * UNIT[unit]);
    }),
  );
});

test('malformed sizes are refused', () => {
  const number = fc.stringMatching(/^[0-9]{1,6}(\.[0-9]{1,3})?$/);
  const unit = fc.constantFrom('', 'K', 'M', 'G', 'T', 'GiB', 'mb');
  const malformed = fc.oneof(
    fc.tuple(fc.constantFrom('-', '+'), number, unit).map(([s, n, u]) => `${s}${n}${u}`),
    fc.tuple(number, fc.constantFrom('e3', 'E-2'), unit).map(([n, e, u]) => `${n}${e}${u}`),
    fc.tuple(fc.stringMatching(/^[0-9a-f]{1,4}$/), unit).map(([h, u]) => `0x${h}${u}`),
    fc.tuple(fc.stringMatching(/^[0-9]{1,3}$/), unit).map(([n, u]) => `.${n}${u}`),
    fc.tuple(fc.stringMatching(/^[0-9]{1,3}$/), unit).map(([n, u]) => `${n}.${u}`),
    fc.tuple(number, fc.stringMatching(/^[0-9]{1,3}$/), unit).map(([n, f, u]) => `${n}.${f}.1${u}`),
    fc.tuple(number, fc.constantFrom('P', 'E', 'X', 'KK', 'GG', 'BB', 'iiB', 'G B', ','), ).map(([n, u]) => `${n}${u}`),
    fc.tuple(number, unit, fc.string({ unit: 'binary', minLength: 1, maxLength: 3 }).filter((s) => /[^0-9.\s]/u.test(s) && !/^[KMGTIB]+$/i.test(s))).map(([n, u, junk]) => `${n}${u}${junk}`),
    fc.constantFrom('', ' ', 'G', 'GiB', 'NaN', 'Infinity', '1 2', '1_000'),
  );
  fc.assert(
    fc.property(malformed, fc.constantFrom('B' as const, 'M' as const), (text, bare) => {
      assert.equal(parseSize(text, bare), undefined, JSON.stringify(text));
    }),
    { numRuns: 3000 },
  );
});
