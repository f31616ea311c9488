import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeNonDisk, isIso, sniffArchive, sniffCompression } from './probe-image.js';

test('compressions are recognised by content', () => {
  assert.equal(sniffCompression(Buffer.from([0x1f, 0x8b, 8, 0])), 'gzip');
  assert.equal(sniffCompression(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0])), 'xz');
  assert.equal(sniffCompression(Buffer.from('BZh91AY&SY')), 'bzip2');
  assert.equal(sniffCompression(Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0])), 'zstd');
  assert.equal(sniffCompression(Buffer.from('QFI\xfb', 'latin1')), undefined);
});

test('an ISO volume descriptor', () => {
  assert.equal(isIso(Buffer.from('\x01CD001', 'latin1')), true);
  assert.equal(isIso(Buffer.alloc(6)), false);
});

test('a raw image must look like a disk', () => {
  const mbr = Buffer.alloc(4096);
  mbr[510] = 0x55;
  mbr[511] = 0xaa;
  assert.equal(describeNonDisk(mbr), undefined);
  const ext4 = Buffer.alloc(4096);
  ext4.writeUInt16LE(0xef53, 1080);
  assert.equal(describeNonDisk(ext4), undefined);
  assert.match(describeNonDisk(Buffer.from('<!DOCTYPE html><html>404</html>'))!, /HTML/);
  assert.match(describeNonDisk(Buffer.from('hello\n'.repeat(700)))!, /text file/);
  assert.match(describeNonDisk(Buffer.alloc(100, 1))!, /smaller than one disk sector/);
  assert.equal(describeNonDisk(Buffer.alloc(4096, 0xa5)), undefined, 'binary data without a signature may be a bare filesystem');
});

test('archives that qemu-img would call raw are named', () => {
  assert.equal(sniffArchive(Buffer.from('PK\x03\x04rest', 'latin1')), 'zip');
  const tar = Buffer.alloc(1024);
  tar.write('ustar', 257, 'latin1');
  assert.equal(sniffArchive(tar), 'tar');
  assert.match(describeNonDisk(tar)!, /tar archive/);
  assert.equal(sniffArchive(Buffer.alloc(1024)), undefined);
});
