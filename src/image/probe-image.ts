import pathModule from 'node:path';
import { inputError } from '../errors.js';
import { runProgram } from '../process/run-program.js';
import { findOutsideReference, referenceInInfo } from './image-references.js';
import { readAt } from './read-at.js';

/** What kind of file the first argument is, judged by content, never by name. */
export type ImageKind =
  | { kind: 'disk'; format: string; virtualSize: number }
  | { kind: 'iso'; virtualSize: number }
  | { kind: 'compressed'; compression: Compression };
export type Compression = 'gzip' | 'xz' | 'bzip2' | 'zstd';

/** Formats QEMU can boot from directly; others are converted to qcow2 first. */
export const DIRECT_FORMATS = ['qcow2', 'raw'];
export const CONVERTIBLE_FORMATS = ['vmdk', 'vhdx', 'vdi', 'vpc', 'qed', 'parallels', 'dmg', 'cloop'];

/** Magic numbers of the compressions we unpack. */
export function sniffCompression(head: Buffer): Compression | undefined {
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  if (head.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2';
  if (head.subarray(0, 4).equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))) return 'zstd';
  return undefined;
}

/** Archives and compressions that qemu-img would take for a raw disk, but which snabbvm does not unpack. */
export function sniffArchive(head: Buffer): string | undefined {
  if (head.subarray(0, 4).equals(Buffer.from('PK\x03\x04', 'latin1'))) return 'zip';
  if (head.subarray(0, 6).equals(Buffer.from([0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c]))) return '7-Zip';
  if (head.subarray(0, 4).equals(Buffer.from([0x04, 0x22, 0x4d, 0x18]))) return 'lz4';
  if (head.subarray(257, 262).toString('latin1') === 'ustar') return 'tar';
  return undefined;
}

/** An ISO 9660 volume has "CD001" at byte 32769. */
export function isIso(sector16: Buffer): boolean {
  return sector16.subarray(1, 6).toString('latin1') === 'CD001';
}

/**
 * qemu-img calls any file "raw", so a raw image must also look like a disk: a boot signature, a filesystem,
 * or at least not text. This refuses the classic mistake of an HTML error page saved under a .img name.
 */
export function describeNonDisk(head: Buffer): string | undefined {
  const text = head.toString('latin1');
  if (/^\s*<(!doctype|html|\?xml)/i.test(text)) return 'it is an HTML or XML page, not a disk image (a failed download?)';
  if (head.length < 512) return 'it is smaller than one disk sector';
  const archive = sniffArchive(head);
  if (archive) return `it is a ${archive} archive, not a disk image; extract the image from it and give that`;
  const bootSignature = head[510] === 0x55 && head[511] === 0xaa;
  const ext = head.length >= 1082 && head.readUInt16LE(1080) === 0xef53;
  if (bootSignature || ext) return undefined;
  // printable ASCII, tabs and newlines only: a text file
  if (/^[\x09\x0a\x0d\x20-\x7e]*$/.test(text.replace(/\0+$/, ''))) return 'it is a text file, not a disk image';
  return undefined;
}


interface QemuImgInfo {
  format: string;
  'virtual-size': number;
}

/**
 * Probes a local file's format with `qemu-img info --output=json` and its content. Throws exit 3 for a non-image.
 * `name` is what error messages call it (the URL of a download). A `data` disk (--disk) need not look bootable:
 * any raw file is one (an ISO too), but a compressed one is refused, since only the boot image is unpacked.
 */
export async function probeImage(path: string, name = `image ${path}`, purpose: 'boot' | 'data' = 'boot'): Promise<ImageKind> {
  const head = await readAt(path, 0, 4096);
  const compression = sniffCompression(head);
  if (compression && purpose === 'data') throw inputError(`${name} is ${compression}-compressed; unpack it first (snabbvm unpacks only the boot image)`);
  if (compression) return { kind: 'compressed', compression };

  // before qemu-img opens it: opening alone follows a VMDK's extents or a qcow2's data file
  const refusal = (why: string) => inputError(`${name} is refused: ${why}; snabbvm only takes images that refer to nothing outside themselves`);
  const reference = await findOutsideReference(path, head);
  if (reference) throw refusal(reference);

  // an absolute path: qemu-img takes `json:...` or `nbd:...` at the start of a name as a protocol
  const absolute = pathModule.resolve(path);
  let info: QemuImgInfo;
  try {
    const { stdout } = await runProgram(['qemu-img', 'info', '--output=json', absolute]);
    info = JSON.parse(stdout) as QemuImgInfo;
  } catch (err) {
    throw inputError(`${name} cannot be read by qemu-img: ${(err as Error).message}`, err);
  }
  const seen = referenceInInfo(info as unknown as Record<string, unknown>, absolute);
  if (seen) throw refusal(seen);
  if (info.format === 'raw' && purpose === 'data') {
    const archive = sniffArchive(head);
    if (archive) throw inputError(`${name} is a ${archive} archive, not a disk image; extract the image from it and give that`);
  } else if (info.format === 'raw') {
    if (isIso(await readAt(path, 32768, 6))) return { kind: 'iso', virtualSize: info['virtual-size'] };
    const why = describeNonDisk(head);
    if (why) throw inputError(`${name} is not a disk image: ${why}; give a qcow2, raw, vmdk or ISO file, or its URL`);
  } else if (!DIRECT_FORMATS.includes(info.format) && !CONVERTIBLE_FORMATS.includes(info.format)) {
    throw inputError(`${name} has format '${info.format}', which snabbvm cannot boot; convert it to qcow2 with qemu-img convert`);
  }
  return { kind: 'disk', format: info.format, virtualSize: info['virtual-size'] };
}
