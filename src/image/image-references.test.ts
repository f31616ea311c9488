import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isVmdkDescriptor, qcowReference, referenceInInfo, vmdkSparseReference } from './image-references.js';

test('a VMDK text descriptor is found as QEMU finds one: comments and blank lines, then version=', () => {
  assert.equal(isVmdkDescriptor(Buffer.from('# Disk DescriptorFile\nversion=1\nRW 8 FLAT "/etc/passwd" 0\n')), true);
  assert.equal(isVmdkDescriptor(Buffer.from('\r\n  \n# x\r\nversion=3\r\n')), true);
  assert.equal(isVmdkDescriptor(Buffer.from('hello\nversion=1\n')), false);
  assert.equal(isVmdkDescriptor(Buffer.alloc(512)), false);
});

test('qcow2 headers: a backing file offset, the external data file bit', async () => {
  const head = Buffer.alloc(112);
  head.write('QFI\xfb', 0, 'latin1');
  head.writeUInt32BE(3, 4);
  head.writeUInt32BE(16, 20); // cluster bits
  head.writeUInt32BE(112, 100); // header length
  const none = async () => Buffer.alloc(8);
  assert.equal(await qcowReference(head, none), undefined);
  head.writeBigUInt64BE(4n, 72);
  assert.match((await qcowReference(head, none))!, /external data file/);
  head.writeBigUInt64BE(0n, 72);
  head.writeBigUInt64BE(512n, 8);
  head.writeUInt32BE(11, 16);
  assert.match((await qcowReference(head, async () => Buffer.from('/etc/passwd')))!, /backing file \("\/etc\/passwd"\)/);
});

test("qemu-img info's own view: backing files, data files, extents elsewhere", () => {
  assert.equal(referenceInInfo({ format: 'qcow2' }, '/x'), undefined);
  assert.match(referenceInInfo({ 'backing-filename': 'nbd://h/x' }, '/x')!, /backing file/);
  assert.match(referenceInInfo({ 'format-specific': { data: { 'data-file': '/d' } } }, '/x')!, /data file/);
  assert.equal(referenceInInfo({ 'format-specific': { data: { extents: [{ filename: '/x' }] } } }, '/x'), undefined);
  assert.match(referenceInInfo({ 'format-specific': { data: { extents: [{ filename: '/etc/passwd' }] } } }, '/x')!, /extent in another file/);
});

test('a sparse VMDK: capacity 0 (extents from the descriptor), a parent at 0x200 even when the header points elsewhere', async () => {
  const file = Buffer.alloc(0x200 + 20 * 512 + 4096);
  file.write('KDMV', 0, 'latin1');
  file.writeBigUInt64LE(2048n, 12); // capacity
  file.writeBigUInt64LE(30n, 28); // the descriptor, says the header: at sector 30
  file.writeBigUInt64LE(1n, 36);
  const read = async (at: number, n: number) => file.subarray(at, at + n);
  assert.equal(await vmdkSparseReference(file.subarray(0, 4096), read), undefined);
  file.write('parentFileNameHint="/etc/passwd"', 0x200 + 100, 'latin1');
  assert.match((await vmdkSparseReference(file.subarray(0, 4096), read))!, /parent file \("\/etc\/passwd"\)/);
  file.writeBigUInt64LE(0n, 12);
  assert.match((await vmdkSparseReference(file.subarray(0, 4096), read))!, /embedded descriptor lists extents/);
});
