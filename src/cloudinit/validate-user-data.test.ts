import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { parseDocument } from 'yaml';
import { firstInvalidUtf8, overrideWarnings, positionOf, validateUserData } from './validate-user-data.js';

const check = (content: string | Buffer) => validateUserData(Buffer.isBuffer(content) ? content : Buffer.from(content), '/u/ud.yaml');
const refused = (content: string | Buffer): string => {
  const r = check(content);
  assert.equal(r.ok, false, `expected a refusal of ${JSON.stringify(content.toString())}`);
  return (r as { message: string }).message;
};
const kind = (content: string | Buffer): string => {
  const r = check(content);
  assert.ok(r.ok, r.ok ? '' : r.message);
  return r.check.kind;
};

describe('validateUserData: what cloud-init accepts', () => {
  test('every header cloud-init knows, case-insensitive, after leading white space', () => {
    assert.equal(kind('#cloud-config\nruncmd: [ls]\n'), 'cloud-config');
    assert.equal(kind('\n  #Cloud-Config\nruncmd: [ls]\n'), 'cloud-config');
    assert.equal(kind('#!/bin/bash\necho hi\n'), 'script');
    assert.equal(kind('#include\nhttps://example.invalid/a\n'), 'include');
    assert.equal(kind('#include-once\nhttps://example.invalid/a\n'), 'include-once');
    assert.equal(kind('#cloud-boothook\necho hi\n'), 'boothook');
    assert.equal(kind('## template: jinja\n#cloud-config\nhostname: {{ v1.local_hostname }}\n'), 'jinja template');
    assert.equal(kind('#cloud-config-archive\n- type: text/x-shellscript\n  content: "#!/bin/sh"\n'), 'cloud-config-archive');
    assert.equal(kind('#part-handler\ndef list_types(): return []\n'), 'part-handler');
  });

  test('MIME multipart and gzip as they are', () => {
    assert.equal(kind('Content-Type: multipart/mixed; boundary="x"\nMIME-Version: 1.0\n\n--x--\n'), 'mime');
    const gz = check(gzipSync('#cloud-config\nruncmd: [ls]\n'));
    assert.ok(gz.ok && gz.check.kind === 'cloud-config' && gz.check.compressed);
  });

  test('cloud-config with nothing in it, duplicate keys, YAML 1.1 merge keys, CRLF line ends', () => {
    assert.equal(kind('#cloud-config\n'), 'cloud-config');
    assert.equal(kind('#cloud-config\n---\n...\n'), 'cloud-config');
    assert.equal(kind('#cloud-config\na: 1\na: 2\n'), 'cloud-config');
    assert.equal(kind('#cloud-config\nb: &b {x: 1}\nc:\n  <<: *b\n'), 'cloud-config');
    assert.equal(kind('#cloud-config\r\nruncmd:\r\n  - ls\r\n'), 'cloud-config');
  });

  test('multi-line quoted strings and flow collections less indented than YAML 1.2 wants (PyYAML takes them)', () => {
    assert.equal(kind('#cloud-config\nwrite_files:\n  - path: /x\n    content: "one\ntwo"\nruncmd: [ls]\n'), 'cloud-config');
    assert.equal(kind("#cloud-config\nruncmd:\n  - 'it''s\nfine'\n"), 'cloud-config');
    assert.equal(kind('#cloud-config\npackages: [a,\nb]\n'), 'cloud-config');
    assert.equal(kind('#cloud-config\na: {x: 1,\ny: [2,\n3]}\n'), 'cloud-config');
  });

  test('tabs inside quotes, block scalars and comments', () => {
    assert.equal(kind('#cloud-config\na: "x\ty"\n# a\tcomment\nb: |\n  all:\n  \techo hi\n'), 'cloud-config');
  });

  test('the parsed cloud-config is returned for warnings', () => {
    const r = check('#cloud-config\nusers: [bob]\n');
    assert.ok(r.ok);
    assert.deepEqual(r.check.cloudConfig?.toJS(), { users: ['bob'] });
  });
});

describe('validateUserData: what cloud-init would ignore, in one line with line and column', () => {
  test('a tab used for indentation', () => {
    assert.equal(
      refused('#cloud-config\nruncmd:\n\t- echo hi\n'),
      'user-data /u/ud.yaml line 3, column 1 ("\\t- echo hi"): a tab is used for indentation; YAML allows only spaces there',
    );
  });

  test('a tab elsewhere outside quotes (PyYAML refuses it)', () => {
    assert.match(refused('#cloud-config\na: b\t\n'), /line 2, column 5 \("a: b\\t"\): .*allows a tab only inside quotes/);
  });

  test('an unclosed quote points at where it opens', () => {
    assert.equal(
      refused('#cloud-config\nruncmd:\n  - "echo hi\n  - ls\n'),
      'user-data /u/ud.yaml line 3, column 5 ("  - \\"echo hi"): this double-quoted string is never closed; add the closing "',
    );
  });

  test('a list or a string at the top level', () => {
    assert.match(refused('#cloud-config\n- a\n- b\n'), /line 2, column 1 \("- a"\): the top level is a list; cloud-config must be a mapping/);
    assert.match(refused('#cloud-config\nhello\n'), /line 2, column 1 \("hello"\): the top level is a string/);
  });

  test('two YAML documents', () => {
    assert.match(refused('#cloud-config\na: 1\n---\nb: 2\n'), /line 3, column 1 \("---"\): a second YAML document/);
  });

  test('YAML errors the parser finds, with their position', () => {
    assert.match(refused('#cloud-config\nruncmd:\n  - echo a: b: c\n'), /line 3, column 13 .*put a value that contains ': ' in quotes/);
    assert.match(refused('#cloud-config\na: @x\n'), /line 2, column 4 .*reserved character @/);
    assert.match(refused('#cloud-config\na: *nope\n'), /line 2, column 4 .*alias \*nope refers to no anchor/);
    assert.match(refused('#cloud-config\na: !foo x\n'), /line 2, column 4 .*tag !foo/);
  });

  test('no header, with a hint that fits', () => {
    assert.match(refused('runcmd:\n  - ls\n'), /has no header cloud-init recognizes.*add #cloud-config as its first line$/);
    assert.match(refused('# cloud-config\nruncmd: [ls]\n'), /must be exactly #cloud-config \(found "# cloud-config"\)$/);
    assert.match(refused('apt-get install -y foo\n'), /start it with #!\/bin\/sh/);
    assert.match(refused('hello there\n'), /start it with #cloud-config, #! \(a script\), #include, #cloud-boothook, ## template: jinja, a MIME multipart message/);
  });

  test('empty, white space only, binary, byte-order mark, bad gzip', () => {
    assert.match(refused(''), /^user-data \/u\/ud\.yaml is empty; start it with #cloud-config/);
    assert.match(refused(' \n\n'), /is empty/);
    assert.match(refused(Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0, 0xff, 0xfe])), /is a binary file, not user-data/);
    assert.match(refused('\ufeff#cloud-config\n'), /byte-order mark/);
    assert.match(refused(Buffer.from([0x1f, 0x8b, 8, 0, 1, 2])), /is gzip-compressed but does not decompress/);
    assert.match(refused(gzipSync('runcmd: [ls]\n')), /\(after gunzip\)/);
  });

  test('bytes that are not UTF-8, and control characters', () => {
    const latin1 = Buffer.concat([Buffer.from('#cloud-config\nruncmd:\n  - echo caf'), Buffer.from([0xe9, 0x0a])]);
    assert.match(refused(latin1), /line 3, column 13 .*the byte 0xE9 is not UTF-8/);
    assert.match(refused('#cloud-config\na: b\x1bc\n'), /line 2, column 5 \("a: b\\u001bc"\): the character U\+001B is not allowed/);
  });

  test('only the offending line is quoted, never the rest of the file', () => {
    const message = refused('#cloud-config\npassword: hunter2\nruncmd:\n\t- ls\n');
    assert.doesNotMatch(message, /hunter2/);
    assert.equal(message.split('\n').length, 1);
  });
});

test('a script with CRLF line ends passes, with a warning (its #! line would name "/bin/sh\\r")', () => {
  const r = check('#!/bin/sh\r\necho hi\r\n');
  assert.ok(r.ok);
  assert.match(r.check.warnings.join(), /Windows \(CRLF\) line ends.*dos2unix/);
  assert.deepEqual((check('#!/bin/sh\necho hi\n') as { check: { warnings: string[] } }).check.warnings, []);
});

test("a runcmd entry that YAML reads as a mapping passes, with a warning to quote it", () => {
  const r = check('#cloud-config\nruncmd:\n  - ls\n  - echo $(cut -d: -f2 /etc/passwd)\n');
  assert.ok(r.ok);
  assert.deepEqual(r.check.warnings, [
    'user-data /u/ud.yaml line 4, column 5 ("  - echo $(cut -d: -f2 /etc/passwd)"): this runcmd entry is a mapping, not a command (an unquoted \': \' makes one), so cloud-init\'s runcmd will fail; put the command in quotes',
  ]);
});

test('overrideWarnings: where the user-data undoes --ssh-key or --password', () => {
  const warn = (yaml: string, given = { sshKeys: true, password: true }) => overrideWarnings(parseDocument(yaml), given);
  assert.deepEqual(warn('users: [default, bob]\nruncmd: [ls]\n'), []);
  assert.deepEqual(warn('users: [bob]\n', { sshKeys: false, password: false }), []);
  assert.match(warn('users:\n  - name: bob\n').join(), /no 'default' entry.*--ssh-key and --password/);
  assert.match(warn('users: bob, carol\n').join(), /no 'default' entry/);
  assert.match(warn('allow_public_ssh_keys: false\n').join(), /ignores --ssh-key/);
  assert.match(warn('password: mine\n').join(), /wins over --password/);
  assert.match(warn('chpasswd:\n  users: [{name: debian, password: x}]\n').join(), /wins over --password/);
  assert.deepEqual(warn('chpasswd: {expire: true}\n'), []);
});

test('positionOf counts lines across \\n, \\r\\n and \\r, and columns in characters', () => {
  assert.deepEqual(positionOf('ab\r\ncd\ref\ngh', 10), { line: 4, column: 1, lineText: 'gh' });
  assert.deepEqual(positionOf('é😀x', 3), { line: 1, column: 3, lineText: 'é😀x' });
});

test('firstInvalidUtf8 finds what Python\'s strict decoder refuses', () => {
  assert.equal(firstInvalidUtf8(Buffer.from('café 😀')), undefined);
  assert.equal(firstInvalidUtf8(Buffer.from([0x61, 0xe9, 0x62])), 1);
  assert.equal(firstInvalidUtf8(Buffer.from([0xc0, 0xaf])), 0, 'overlong');
  assert.equal(firstInvalidUtf8(Buffer.from([0xed, 0xa0, 0x80])), 0, 'surrogate');
  assert.equal(firstInvalidUtf8(Buffer.from([0x61, 0xf0, 0x9f])), 1, 'truncated');
});
