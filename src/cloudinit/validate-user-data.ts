import { readFileSync, statSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { isMap, isScalar, isSeq, type Document } from 'yaml';
import { oneLine } from '../errors.js';
import { parseCloudConfig } from './parse-cloud-config.js';

/**
 * The headers cloud-init recognizes at the start of user-data (cloudinit/handlers INCLUSION_TYPES_MAP, matched
 * case-insensitively after leading white space, longest first). The last three only make sense inside MIME parts,
 * but cloud-init accepts them as headers, so we do too.
 */
const HEADERS: readonly [string, string][] = (
  [
    ['#include', 'include'],
    ['#include-once', 'include-once'],
    ['#!', 'script'],
    ['#cloud-config', 'cloud-config'],
    ['#part-handler', 'part-handler'],
    ['#cloud-boothook', 'boothook'],
    ['#cloud-config-archive', 'cloud-config-archive'],
    ['#cloud-config-jsonp', 'cloud-config-jsonp'],
    ['## template: jinja', 'jinja template'],
    ['text/x-shellscript-per-boot', 'script'],
    ['text/x-shellscript-per-instance', 'script'],
    ['text/x-shellscript-per-once', 'script'],
  ] as [string, string][]
).sort((a, b) => b[0].length - a[0].length);

export const ACCEPTED_HEADERS = '#cloud-config, #! (a script), #include, #cloud-boothook, ## template: jinja, a MIME multipart message, or any of these gzip-compressed';

export interface UserDataCheck {
  /** cloud-config, script, include, mime, ... */
  kind: string;
  compressed: boolean;
  /** the parsed cloud-config, for warnings about what it leaves out */
  cloudConfig?: Document;
  /** what cloud-init accepts but will go wrong in the guest */
  warnings: string[];
}

export type UserDataResult = { ok: true; check: UserDataCheck } | { ok: false; message: string };

/**
 * Checks user-data the way cloud-init will read it, and explains in one line why cloud-init would ignore it.
 * Never refuses a file cloud-init accepts (test/cloudinit-vs-cloud-init.test.ts compares the two). The message never
 * quotes the file, except for the one line a YAML error is on. Pure.
 */
export function validateUserData(bytes: Buffer, file: string): UserDataResult {
  // one line, also when a YAML error quotes a stray \r from the file
  const fail = (message: string): UserDataResult => ({ ok: false, message: oneLine(`user-data ${file} ${message}`) });
  if (bytes.toString('latin1').trim() === '') return fail(`is empty; start it with ${ACCEPTED_HEADERS}`);

  // cloud-init decompresses gzip once, then looks at what is inside.
  let data = bytes;
  const compressed = bytes[0] === 0x1f && bytes[1] === 0x8b;
  if (compressed) {
    try {
      data = gunzipSync(bytes, { maxOutputLength: 256 * 2 ** 20 });
    } catch (err) {
      return fail(`is gzip-compressed but does not decompress (${(err as Error).message}); compress it again with gzip`);
    }
    if (data.toString('latin1').trim() === '') return fail(`is empty once decompressed; start it with ${ACCEPTED_HEADERS}`);
  }
  const inside = compressed ? ' (after gunzip)' : '';

  if (data.subarray(0, 4096).toString('latin1').toLowerCase().includes('mime-version:')) return { ok: true, check: { kind: 'mime', compressed, warnings: [] } };

  const text = data.toString('utf8');
  const start = text.replace(/^[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/, '').slice(0, 64).toLowerCase();
  const header = HEADERS.find(([prefix]) => start.startsWith(prefix));
  if (!header) {
    if (firstInvalidUtf8(data) !== undefined || data.includes(0)) return fail(`is a binary file${inside}, not user-data; give a text file that starts with ${ACCEPTED_HEADERS}`);
    if (text.startsWith('\ufeff')) return fail(`starts with a byte-order mark, so cloud-init would not recognize its header; save it as UTF-8 without BOM`);
    const firstLine = text.trimStart().split(/\r?\n/, 1)[0]!;
    return fail(`has no header cloud-init recognizes, so cloud-init would ignore it${inside}; ${headerHint(firstLine, text)}`);
  }
  const kind = header[1];
  if (kind !== 'cloud-config') {
    const warnings: string[] = [];
    if (text.trimStart().startsWith('#!') && /^[^\n]*\r\n/.test(text.trimStart())) {
      warnings.push(`user-data ${file} is a script with Windows (CRLF) line ends: its #! line names an interpreter ending in \\r, so it will not run; convert it with dos2unix`);
    }
    return { ok: true, check: { kind, compressed, warnings } };
  }

  const invalid = firstInvalidUtf8(data);
  const parsed =
    invalid === undefined
      ? parseCloudConfig(text)
      : {
          ok: false as const,
          problem: {
            offset: data.subarray(0, invalid).toString('utf8').length,
            message: `the byte 0x${data[invalid]!.toString(16).toUpperCase().padStart(2, '0')} is not UTF-8 (is the file Latin-1 or Windows-1252?), and cloud-init reads only UTF-8; save the file as UTF-8`,
          },
        };
  if (!parsed.ok) {
    const { line, column, lineText } = positionOf(text, parsed.problem.offset);
    return fail(`line ${line}, column ${column}${inside} (${quoteLine(lineText)}): ${parsed.problem.message}`);
  }
  const check: UserDataCheck = { kind, compressed, warnings: [] };
  if (parsed.doc) {
    check.cloudConfig = parsed.doc;
    check.warnings.push(...commandListWarnings(parsed.doc, text, `user-data ${file}`));
  }
  return { ok: true, check };
}

/** Far more than any user-data: a file this big is most likely the image given after -u by mistake. */
export const MAX_USER_DATA_BYTES = 64 * 2 ** 20;

/** Reads and checks a user-data file; a file that cannot be read gives `unreadable` with the errno code. */
export function readUserDataFile(file: string): { bytes: Buffer; result: UserDataResult } | { unreadable: string } {
  let bytes: Buffer;
  try {
    const size = statSync(file).size;
    if (size > MAX_USER_DATA_BYTES) {
      const message = `user-data ${file} is ${Math.round(size / 2 ** 20)} MiB, far more than user-data can be; -u takes the cloud-init user-data, and the image is the first argument`;
      return { bytes: Buffer.alloc(0), result: { ok: false, message } };
    }
    bytes = readFileSync(file);
  } catch (err) {
    return { unreadable: (err as NodeJS.ErrnoException).code ?? String(err) };
  }
  return { bytes, result: validateUserData(bytes, file) };
}

/**
 * For config validation: the problem with the user-data file, or undefined when it is fine or cannot be read (the
 * caller reports that).
 */
export function checkUserDataFile(file: string): string | undefined {
  const read = readUserDataFile(file);
  return 'result' in read && !read.result.ok ? read.result.message : undefined;
}

/**
 * A runcmd/bootcmd entry that YAML reads as a mapping (an unquoted ': ' inside the command does that) makes
 * cloud-init's whole runcmd fail ("Unable to shellify type 'dict'"), though the file is fine.
 */
function commandListWarnings(doc: Document, text: string, what: string): string[] {
  const warnings: string[] = [];
  for (const key of ['runcmd', 'bootcmd']) {
    const list = doc.get(key, true);
    if (!isSeq(list)) continue;
    for (const item of list.items) {
      if (!isMap(item)) continue;
      const { line, column, lineText } = positionOf(text, item.range?.[0] ?? 0);
      warnings.push(`${what} line ${line}, column ${column} (${quoteLine(lineText)}): this ${key} entry is a mapping, not a command (an unquoted ': ' makes one), so cloud-init's ${key} will fail; put the command in quotes`);
    }
  }
  return warnings;
}

/** Where the user's cloud-config quietly undoes --ssh-key or --password, what to tell them (never quoting it). Pure. */
export function overrideWarnings(doc: Document, given: { sshKeys: boolean; password: boolean }): string[] {
  const warnings: string[] = [];
  const users = doc.get('users', true);
  const isDefault = (node: unknown) => (isScalar(node) ? node.value === 'default' : isMap(node) ? node.get('name') === 'default' : false);
  const noDefaultUser = (isSeq(users) && !users.items.some(isDefault)) || (isScalar(users) && typeof users.value === 'string' && !/\bdefault\b/.test(users.value));
  const options = [...(given.sshKeys ? ['--ssh-key'] : []), ...(given.password ? ['--password'] : [])];
  if (noDefaultUser && options.length > 0) {
    warnings.push(`the user-data's users: list has no 'default' entry, so the image's default user is not created and ${options.join(' and ')} (for that user) has no effect; add '- default' to users:`);
  }
  if (given.sshKeys && doc.get('allow_public_ssh_keys') === false) {
    warnings.push('the user-data sets allow_public_ssh_keys: false, so cloud-init ignores --ssh-key; remove that line or put the key in the user-data');
  }
  const chpasswd = doc.get('chpasswd', true);
  if (given.password && (doc.has('password') || (isMap(chpasswd) && (chpasswd.has('users') || chpasswd.has('list'))))) {
    warnings.push('the user-data sets passwords itself (password: or chpasswd:), and that wins over --password');
  }
  return warnings;
}

/** What to write instead of the first line, when it looks like a near miss. */
function headerHint(firstLine: string, text: string): string {
  const line = firstLine.trim();
  if (/^#?\s*cloud[-_ ]?config\b/i.test(line)) return `the first line must be exactly #cloud-config (found ${quoteLine(firstLine)})`;
  if (/^(\/|[A-Za-z_][\w.-]*\s*=|set |echo |apt|yum |dnf |if |for )/.test(line)) return `to run it as a script, start it with #!/bin/sh (or #!/bin/bash)`;
  const yaml = parseCloudConfig(text);
  if (yaml.ok && yaml.doc) return 'it looks like cloud-config YAML: add #cloud-config as its first line';
  return `start it with ${ACCEPTED_HEADERS}`;
}

/** The line, quoted with escapes (tabs show as \t), and cut short when long. */
function quoteLine(line: string): string {
  return JSON.stringify(line.length > 120 ? `${line.slice(0, 117)}...` : line);
}

/** 1-based line and column (in characters) of an offset in the text. Lines end at \n, \r\n or \r, as in YAML. */
export function positionOf(text: string, offset: number): { line: number; column: number; lineText: string } {
  const before = text.slice(0, offset);
  const breaks = before.match(/\r\n|\r|\n/g) ?? [];
  const lineStart = Math.max(before.lastIndexOf('\n'), before.lastIndexOf('\r')) + 1;
  const rest = text.slice(lineStart);
  const lineText = rest.slice(0, rest.search(/\r|\n|$/));
  return { line: breaks.length + 1, column: [...text.slice(lineStart, offset)].length + 1, lineText };
}

/** Byte offset of the first byte that is not well-formed UTF-8 (as Python's strict decoder sees it), if any. */
export function firstInvalidUtf8(b: Uint8Array): number | undefined {
  for (let i = 0; i < b.length; ) {
    const c = b[i]!;
    const more = c < 0x80 ? 0 : c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : -1;
    if (more < 0) return i;
    for (let k = 1; k <= more; k++) if (((b[i + k] ?? 0) & 0xc0) !== 0x80) return i;
    const next = b[i + 1] ?? 0;
    if ((c === 0xe0 && next < 0xa0) || (c === 0xed && next > 0x9f) || (c === 0xf0 && next < 0x90) || (c === 0xf4 && next > 0x8f)) return i;
    i += more + 1;
  }
  return undefined;
}
