import { open } from 'node:fs/promises';
import { readAt } from './read-at.js';

/**
 * An image must never make QEMU or qemu-img open anything but itself: a backing file (a qcow2 made with
 * `-b /etc/passwd`, or `json:`/`nbd:`/`http:` specs), a qcow2 external data file, a VMDK whose descriptor lists
 * extents in other files, a differencing VHD/VDI. Such an image from a URL could read the host's files (or a
 * device) into the cache or the VM. These checks read the headers themselves, before qemu-img sees the file:
 * `qemu-img info` opens a VMDK's extents and a qcow2's data file, and `qemu-img convert` and QEMU follow all of them.
 */

async function sizeOf(file: string): Promise<number> {
  const fh = await open(file, 'r');
  try {
    return (await fh.stat()).size;
  } finally {
    await fh.close();
  }
}

const QCOW2_INCOMPAT_DATA_FILE = 1n << 2n;
const QCOW2_EXT_DATA_FILE = 0x44415441; // "DATA"
const QED_F_BACKING_FILE = 1n;
const VHD_DIFFERENCING = 4;
const VDI_SIGNATURE = 0xbeda107f;

/** A few printable characters of a name found in a header, for the message. */
function quoteName(bytes: Buffer): string {
  const text = bytes.toString('latin1').replace(/[^\x20-\x7e]/g, '?');
  return JSON.stringify(text.length > 60 ? `${text.slice(0, 60)}...` : text);
}

/**
 * Why the image at `file` refers to something outside itself, or undefined when it does not. `head` is its first
 * 4 KiB at least. Throws only when the file cannot be read.
 */
export async function findOutsideReference(file: string, head: Buffer): Promise<string | undefined> {
  const magic = head.subarray(0, 4).toString('latin1');
  if (magic === 'QFI\xfb') return qcowReference(head, (at, n) => readAt(file, at, n));
  if (magic === 'QED\0') return qedReference(head, (at, n) => readAt(file, at, n));
  if (magic === 'KDMV') return vmdkSparseReference(head, (at, n) => readAt(file, at, n));
  if (magic === 'COWD') return 'it is a VMware 3 (COWD) VMDK, which can name a parent file; convert it to qcow2 yourself';
  if (isVmdkDescriptor(head)) {
    return 'it is a VMDK text descriptor, whose extents are other files (a monolithicSparse or streamOptimized VMDK is one file)';
  }
  if (head.subarray(0, 8).toString('latin1') === 'conectix') return vhdReference(head);
  if (head.length >= 80 && head.readUInt32LE(64) === VDI_SIGNATURE) return vdiReference(head);
  // a VHD keeps its footer at the end (a fixed one only there)
  const size = await sizeOf(file);
  if (size >= 512) {
    const footer = await readAt(file, size - 512, 512);
    if (footer.subarray(0, 8).toString('latin1') === 'conectix') return vhdReference(footer);
  }
  return undefined;
}

type ReadAt = (position: number, length: number) => Promise<Buffer>;

/** qcow (version 1) and qcow2: a backing file name, the external data file bit, or its header extension. */
export async function qcowReference(head: Buffer, read: ReadAt): Promise<string | undefined> {
  if (head.length < 72) return 'its qcow2 header is cut short';
  const version = head.readUInt32BE(4);
  const backingOffset = head.readBigUInt64BE(8);
  if (backingOffset !== 0n) {
    const length = head.readUInt32BE(16); // the same place in version 1 and 2
    const name = await read(Number(backingOffset), Math.min(length, 1024));
    return `it has a backing file (${quoteName(name)}), which would be read with it`;
  }
  if (version < 3) return undefined;
  if (head.length < 104) return 'its qcow2 header is cut short';
  if (head.readBigUInt64BE(72) & QCOW2_INCOMPAT_DATA_FILE) return 'its data is kept in an external data file, which would be read with it';
  // header extensions: type, length, data padded to 8 bytes; type 0 ends them
  let at = head.readUInt32BE(100);
  const clusterEnd = 2 ** Math.min(head.readUInt32BE(20), 21); // the extensions end within the first cluster
  for (let n = 0; n < 1000 && at + 8 <= clusterEnd; n++) {
    const ext = at + 8 <= head.length ? head.subarray(at, at + 8) : await read(at, 8);
    if (ext.length < 8) break;
    const type = ext.readUInt32BE(0);
    const length = ext.readUInt32BE(4);
    if (type === 0) break;
    if (type === QCOW2_EXT_DATA_FILE) return `it names an external data file (${quoteName(await read(at + 8, Math.min(length, 1024)))}), which would be read with it`;
    at += 8 + Math.ceil(length / 8) * 8;
  }
  return undefined;
}

/** QED: the backing file feature bit. */
export async function qedReference(head: Buffer, read: ReadAt): Promise<string | undefined> {
  if (head.length < 64) return 'its QED header is cut short';
  const features = head.readBigUInt64LE(16);
  const offset = head.readUInt32LE(56);
  const length = head.readUInt32LE(60);
  if (features & QED_F_BACKING_FILE || length > 0) {
    return `it has a backing file (${quoteName(await read(offset, Math.min(length, 1024)))}), which would be read with it`;
  }
  return undefined;
}

/** QEMU looks for a sparse VMDK's parent in this many bytes at byte 0x200, whatever the header says. */
const VMDK_DESC_SIZE = 20 * 512;

/**
 * A sparse VMDK (monolithicSparse, streamOptimized) is one file, unless its capacity is 0: then QEMU reads the
 * extents from its embedded descriptor. A parent (parentFileNameHint) is looked for at byte 0x200 by QEMU, and
 * where the header puts the descriptor by the tools that made it: both places are checked.
 */
export async function vmdkSparseReference(head: Buffer, read: ReadAt): Promise<string | undefined> {
  if (head.length < 44) return 'its VMDK header is cut short';
  const capacity = head.readBigUInt64LE(12);
  const descOffset = Number(head.readBigUInt64LE(28)) * 512;
  const descSize = Number(head.readBigUInt64LE(36)) * 512;
  if (capacity === 0n) return 'it is a VMDK whose embedded descriptor lists extents in other files';
  const places: [number, number][] = [[0x200, VMDK_DESC_SIZE]];
  if (descOffset > 0 && descSize > 0 && descOffset !== 0x200) places.push([descOffset, Math.min(descSize, 1 << 20)]);
  for (const [at, length] of places) {
    const descriptor = (await read(at, length)).toString('latin1');
    const hint = descriptor.indexOf('parentFileNameHint');
    if (hint >= 0) {
      const name = /^parentFileNameHint\s*=\s*"([^"]*)"/.exec(descriptor.slice(hint))?.[1] ?? '';
      return `it is a VMDK with a parent file (${quoteName(Buffer.from(name, 'latin1'))}), which would be read with it`;
    }
  }
  return undefined;
}

/**
 * A VMDK text descriptor, as QEMU's probe finds one: comment and blank lines, then `version=N`. Pure. (Looser
 * than QEMU's: any line break, blank lines of any white space.)
 */
export function isVmdkDescriptor(head: Buffer): boolean {
  const text = head.subarray(0, 2048).toString('latin1');
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || /^\s*$/.test(line)) continue;
    return /^version=\d/.test(line);
  }
  return false;
}

/** VHD: a differencing disk names its parent. */
function vhdReference(footer: Buffer): string | undefined {
  if (footer.length >= 64 && footer.readUInt32BE(60) === VHD_DIFFERENCING) return 'it is a differencing VHD, whose data is in a parent file';
  return undefined;
}

/** VDI: an undo or differencing image has a parent. */
function vdiReference(head: Buffer): string | undefined {
  const type = head.readUInt32LE(76);
  if (type === 3 || type === 4) return 'it is a differencing VDI, whose data is in a parent file';
  return undefined;
}

/**
 * What `qemu-img info --output=json` (which never opens backing files) says the image refers to: a second check
 * after the headers. Pure.
 */
export function referenceInInfo(info: Record<string, unknown>, file: string): string | undefined {
  const backing = info['backing-filename'] ?? info['full-backing-filename'];
  if (typeof backing === 'string') return `it has a backing file (${JSON.stringify(backing.slice(0, 60))}), which would be read with it`;
  const specific = (info['format-specific'] as { data?: Record<string, unknown> } | undefined)?.data ?? {};
  if (typeof specific['data-file'] === 'string') return `it names an external data file (${JSON.stringify(String(specific['data-file']).slice(0, 60))}), which would be read with it`;
  const extents = specific.extents;
  if (Array.isArray(extents)) {
    for (const extent of extents as { filename?: string }[]) {
      if (extent.filename !== undefined && extent.filename !== file) return `it is a VMDK with an extent in another file (${JSON.stringify(extent.filename.slice(0, 60))})`;
    }
  }
  return undefined;
}
