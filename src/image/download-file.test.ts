import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildRequestHeaders, looksLikeHtml, parseContentRange } from './download-file.js';

test('Content-Range is parsed, with an unknown total', () => {
  assert.deepEqual(parseContentRange('bytes 100-199/1000'), { start: 100, end: 199, total: 1000 });
  assert.deepEqual(parseContentRange('bytes 0-9/*'), { start: 0, end: 9, total: undefined });
  assert.equal(parseContentRange('bytes */1000'), undefined);
  assert.equal(parseContentRange(undefined), undefined);
});

test('a resume asks for the rest, guarded by If-Range; a revalidation is conditional', () => {
  assert.deepEqual(buildRequestHeaders(500, { etag: '"abc"', lastModified: 'Tue, 01 Jan 2030 00:00:00 GMT' }, undefined), { range: 'bytes=500-', 'if-range': '"abc"' });
  // a weak ETag cannot guard a range: fall back to the date
  assert.deepEqual(buildRequestHeaders(500, { etag: 'W/"abc"', lastModified: 'D' }, undefined), { range: 'bytes=500-', 'if-range': 'D' });
  assert.deepEqual(buildRequestHeaders(0, undefined, { etag: '"e"', lastModified: 'D' }), { 'if-none-match': '"e"', 'if-modified-since': 'D' });
  assert.deepEqual(buildRequestHeaders(0, undefined, undefined), {});
});

test('an HTML page is told from an image', () => {
  assert.equal(looksLikeHtml(Buffer.from('\n<!DOCTYPE html><html>')), true);
  assert.equal(looksLikeHtml(Buffer.from('<html lang="en">')), true);
  assert.equal(looksLikeHtml(Buffer.from('QFI\xfb\0\0\0\x03', 'latin1')), false);
});
