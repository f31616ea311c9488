/**
 * Our user-data validation against cloud-init's own code: the cloud-init and PyYAML packages inside the fixture
 * image (Debian 12: cloud-init 22.4, PyYAML 6.0), run by the host's python3. For a corpus of user-data files (the
 * examples cloud-init ships, and tricky YAML), every file cloud-init would use must pass our validation, and the
 * kinds of bad input we refuse must be ones cloud-init ignores too. No VM is booted.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import { validateUserData } from '../src/cloudinit/validate-user-data.js';
import { cloudImagePath, whyNoVmTests } from './helpers/fixtures.js';

const debCache = path.join(process.env.SNABBVM_FIXTURE_CACHE ?? '/var/cache/snabbvm-fixtures', 'debootstrap');
const findDeb = (prefix: string) => (existsSync(debCache) ? readdirSync(debCache).find((f) => f.startsWith(prefix) && f.endsWith('.deb')) : undefined);

function whyNot(): string | undefined {
  for (const program of ['python3', 'dpkg-deb']) {
    if (spawnSync(program, ['--version'], { stdio: 'ignore' }).status !== 0) return `${program} is not installed`;
  }
  if (!findDeb('cloud-init_')) {
    // The fixture build leaves the packages it installed in its debootstrap cache.
    if (whyNoVmTests()) return `no cloud-init package in ${debCache}, and the fixture image cannot be built here: ${whyNoVmTests()}`;
    cloudImagePath();
  }
  if (!findDeb('cloud-init_') || !findDeb('python3-yaml_')) return `no cloud-init or python3-yaml package in ${debCache}`;
  return undefined;
}

/** cloud-init's verdict on whole user-data files, with its own functions: what it does in UserDataProcessor. */
const HARNESS = String.raw`
import importlib.abc, importlib.machinery, json, sys, types
sys.path.insert(0, sys.argv[1])
# Modules these functions never use, stubbed when the host lacks them.
STUB = ('requests', 'oauthlib', 'jsonpatch', 'jsonpointer', 'configobj', 'netifaces', 'jinja2', 'serial')
class _Any(types.ModuleType):
    __path__ = []
    def __getattr__(self, name):
        if name.startswith('__'): raise AttributeError(name)
        return type(name, (Exception,), {})
class Stubs(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] in STUB: return importlib.machinery.ModuleSpec(name, self, is_package=True)
    def create_module(self, spec): return _Any(spec.name)
    def exec_module(self, module): pass
sys.meta_path.append(Stubs())
from cloudinit import handlers, safeyaml, util
assert safeyaml.yaml.__file__.startswith(sys.argv[1]), safeyaml.yaml.__file__

def verdict(raw):
    data = util.decomp_gzip(raw, decode=False)                  # user_data.convert_string
    if b"mime-version:" in data[0:4096].lower():
        return "mime"
    payload = data.decode("utf-8", "surrogateescape")           # util.fully_decoded_payload
    ctype = handlers.type_from_starts_with(payload)
    if ctype is None:
        return "ignored: no known header"
    if ctype != "text/cloud-config":
        return ctype
    try:
        loaded = safeyaml.load(payload)                         # util.load_yaml, as CloudConfigPartHandler calls it
    except Exception as e:
        return "ignored: " + str(e).split("\n")[0]
    if loaded is not None and not isinstance(loaded, dict):
        return "ignored: top level is " + type(loaded).__name__
    return ctype

for line in sys.stdin:
    f = line.strip()
    with open(f, "rb") as fh:
        print(json.dumps(verdict(fh.read())))
`;

const h = '#cloud-config\n';
/** Tricky YAML, and the bad cases. */
const CASES: [string, string | Buffer][] = [
  ['tab-indent', `${h}runcmd:\n\t- echo hi\n`],
  ['unclosed-double-quote', `${h}runcmd:\n  - "echo hi\n`],
  ['unclosed-single-quote', `${h}a: 'x\nb: 1\n`],
  ['list-at-top', `${h}- a\n- b\n`],
  ['no-header', 'runcmd:\n  - echo hi\n'],
  ['empty', ''],
  ['binary', Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0, 0, 0, 0, 0, 0xff, 0xfe, 0x80, 0x81])],
  ['header-only', h],
  ['comments-only', `${h}# nothing yet\n`],
  ['duplicate-keys', `${h}a: 1\na: 2\n`],
  ['doc-start', `---\n${h}a: 1\n`],
  ['doc-end', `${h}a: 1\n...\n`],
  ['two-doc-ends', `${h}a: 1\n...\n...\n`],
  ['two-documents', `${h}a: 1\n---\nb: 2\n`],
  ['content-after-doc-end', `${h}a: 1\n...\nb: 2\n`],
  ['scalar-at-top', `${h}hello\n`],
  ['merge-key', `${h}base: &b {x: 1}\nc:\n  <<: *b\n  y: 2\n`],
  ['flow-seq-unindented', `${h}packages: [a,\nb]\nruncmd: [ls]\n`],
  ['flow-map-unindented', `${h}a: {x: 1,\ny: [2,\n3]}\nb: [1]\n`],
  ['flow-in-seq-unindented', `${h}a:\n  - [1,\n  2]\n  - 3\n`],
  ['json-style', `${h}{\n"runcmd": [\n"ls",\n"pwd"\n]\n}\n`],
  ['json-style-nested', `${h}write_files: [{"path": "/x",\n"content": "a\nb"}]\n`],
  ['dquote-unindented', `${h}write_files:\n  - path: /etc/motd\n    content: "Welcome\nto the machine"\nruncmd: [ls]\n`],
  ['squote-unindented', `${h}runcmd:\n  - 'echo hello\nworld'\n  - pwd\n`],
  ['squote-escaped-unindented', `${h}runcmd:\n  - 'it''s\nfine'\n`],
  ['dquote-escaped-unindented', `${h}runcmd:\n  - "say \\"hi\\"\nthere"\n`],
  ['apostrophe-in-flow', `${h}runcmd: [don't,\nstop]\n`],
  ['unindented-then-tab', `${h}a: "foo\nbar"\nb:\n\t- x\n`],
  ['unclosed-quote-later-quote', `${h}a: "foo\nb: "bar"\n`],
  ['compact-nested', `${h}runcmd:\n  - echo a: b: c\n`],
  ['mixed-indent', `${h}a:\n  b: 1\n   c: 2\n`],
  ['less-indent', `${h}a:\n    b: 1\n  c: 2\n`],
  ['seq-not-indented', `${h}runcmd:\n- ls\n- pwd\n`],
  ['block-literal', `${h}write_files:\n  - path: /x\n    content: |\n      it's "quoted" [not flow\n      #!/bin/sh\n`],
  ['block-literal-bad', `${h}a: |\n  line1\n line2\n`],
  ['crlf', `${h.replace('\n', '\r\n')}runcmd:\r\n  - ls\r\n`],
  ['crlf-tab', `#cloud-config\r\nruncmd:\r\n\t- ls\r\n`],
  ['cr-only', `#cloud-config\rruncmd:\r  - ls\r`],
  ['upper-case-header', `#Cloud-Config\nruncmd: [ls]\n`],
  ['leading-blank-lines', `\n\n  #cloud-config\nruncmd: [ls]\n`],
  ['header-typo-space', `# cloud-config\nruncmd: [ls]\n`],
  ['header-suffix', `#cloud-configuration\nruncmd: [ls]\n`],
  ['bom', `\ufeff${h}runcmd: [ls]\n`],
  ['bom-inside', `${h}a: \ufeffx\n`],
  ['latin1', Buffer.concat([Buffer.from(`${h}runcmd:\n  - echo caf`), Buffer.from([0xe9]), Buffer.from('\n')])],
  ['utf8', `${h}runcmd:\n  - echo café 😀\n`],
  ['replacement-char', `${h}a: x\ufffdy\n`],
  ['escape-char', `${h}a: b\x1bc\n`],
  ['nul-char', `${h}a: b\x00c\n`],
  ['form-feed', `${h}a: b\x0c\n`],
  ['del-char', `${h}a: b\x7f\n`],
  ['nel-char', `${h}a: b\x85c\n`],
  ['tab-after-colon', `${h}a:\tb\n`],
  ['trailing-tab', `${h}a: b\t\n`],
  ['tab-in-flow', `${h}a: [1,\t2]\n`],
  ['tab-in-block-scalar', `${h}a: |\n  x\n\ty\n`],
  ['tab-only-line', `${h}a: 1\n\t\nb: 2\n`],
  ['tab-in-quotes', `${h}a: "x\ty"\nb: 'x\ty'\n`],
  ['tab-in-comments', `${h}# a\tcomment\na: 1 # another\tone\n`],
  ['tab-in-block-scalar-content', `${h}write_files:\n  - path: /x/Makefile\n    content: |\n      all:\n      \techo hi\n`],
  ['tab-in-folded-scalar', `${h}a: >\n  x\ty\n`],
  ['tab-inside-plain', `${h}a: b\tc\n`],
  ['undefined-alias', `${h}a: *nope\n`],
  ['bad-escape', `${h}a: "\\q"\n`],
  ['reserved-at', `${h}a: @foo\n`],
  ['reserved-backtick', `${h}a: \`foo\`\n`],
  ['long-key', `${h}${'k'.repeat(1100)}: 1\n`],
  ['binary-tag', `${h}a: !!binary aGVsbG8=\n`],
  ['set-tag', `${h}a: !!set {x, y}\n`],
  ['unknown-tag', `${h}a: !foo bar\n`],
  ['python-tag', `${h}a: !!python/object:os.system x\n`],
  ['python-unicode-tag', `${h}a: !!python/unicode x\n`],
  ['float-tag-on-string', `${h}a: !!float "1"\n`],
  ['verbatim-tag', `${h}a: !<tag:yaml.org,2002:str> x\n`],
  ['value-tag', `${h}a: !!value x\n`],
  ['anchors', `${h}a: &x [1]\nb: *x\nc: &y {k: v}\nd:\n  <<: *y\n`],
  ['anchor-twice', `${h}a: &x 1\nb: &x 2\nc: *x\n`],
  ['alias-before-anchor', `${h}b: *x\na: &x 1\n`],
  ['yaml-1.2-directive', `%YAML 1.2\n---\n${h}a: 1\n`],
  ['question-key', `${h}? a\n: b\n`],
  ['complex-key', `${h}[a, b]: 1\n`],
  ['empty-key', `${h}: a\n`],
  ['colon-no-space', `${h}a:b\n`],
  ['implicit-multiline-key', `${h}"a\nb": 1\n`],
  ['octal-and-bools', `${h}write_files:\n  - path: /x\n    permissions: 0644\n    defer: yes\n`],
  ['script', '#!/bin/sh\necho hi\n'],
  ['script-latin1', Buffer.concat([Buffer.from('#!/bin/sh\necho caf'), Buffer.from([0xe9]), Buffer.from('\n')])],
  ['script-without-header', 'apt-get install -y foo\n'],
  ['include', '#include\nhttp://example.invalid/x\n'],
  ['include-once', '#include-once\nhttp://example.invalid/x\n'],
  ['boothook', '#cloud-boothook\n#!/bin/sh\necho hi\n'],
  ['jinja', '## template: jinja\n#cloud-config\nruncmd: [echo {{ v1.local_hostname }}]\n'],
  ['cloud-config-archive', '#cloud-config-archive\n- type: text/cloud-config\n  content: "runcmd: [ls]"\n'],
  ['cloud-config-jsonp', '#cloud-config-jsonp\n[{"op": "add", "path": "/a", "value": 1}]\n'],
  ['part-handler', '#part-handler\ndef list_types(): return []\n'],
  ['mime-prefix-header', 'text/x-shellscript-per-boot\necho hi\n'],
  [
    'mime',
    'Content-Type: multipart/mixed; boundary="B"\nMIME-Version: 1.0\n\n--B\nContent-Type: text/cloud-config\n\nruncmd: [ls]\n--B--\n',
  ],
  ['gzip-broken', Buffer.from([0x1f, 0x8b, 8, 0, 1, 2, 3])],
];

test('our user-data validation never refuses what cloud-init 22.4 (fixture image) accepts', { skip: whyNot(), timeout: 600_000 }, async (t) => {
  const work = mkdtempSync(path.join(tmpdir(), 'snabbvm-ci-diff-'));
  t.after(() => rmSync(work, { recursive: true, force: true }));
  const root = path.join(work, 'root');
  for (const deb of [findDeb('cloud-init_')!, findDeb('python3-yaml_')!]) execFileSync('dpkg-deb', ['-x', path.join(debCache, deb), root]);
  const pythonPath = path.join(root, 'usr/lib/python3/dist-packages');
  writeFileSync(path.join(work, 'harness.py'), HARNESS);

  // The corpus: the cases above, cloud-init's shipped examples, and gzip-compressed copies of everything.
  const corpus: [string, Buffer][] = CASES.map(([name, content]) => [name, Buffer.isBuffer(content) ? content : Buffer.from(content)]);
  const examples = path.join(root, 'usr/share/doc/cloud-init/examples');
  for (const f of readdirSync(examples)) {
    if (!f.endsWith('.txt') && !f.endsWith('.txt.gz')) continue;
    const raw = readFileSync(path.join(examples, f));
    corpus.push([`example ${f.replace(/\.gz$/, '')}`, f.endsWith('.gz') ? gunzipSync(raw) : raw]);
  }
  for (const [name, content] of [...corpus]) corpus.push([`${name} (gzip)`, gzipSync(content)]);
  assert.ok(corpus.length > 150, `corpus of ${corpus.length}`);

  const dir = path.join(work, 'corpus');
  mkdirSync(dir);
  const files = corpus.map((_, i) => path.join(dir, String(i)));
  corpus.forEach(([, content], i) => writeFileSync(files[i]!, content));
  const out = execFileSync('python3', ['-I', path.join(work, 'harness.py'), pythonPath], { input: files.join('\n'), encoding: 'utf8' });
  const verdicts = out.trim().split('\n').map((l) => JSON.parse(l) as string);
  assert.equal(verdicts.length, corpus.length);

  const falseRefusals: string[] = [];
  const alsoIgnoredByCloudInit: string[] = [];
  const missed: string[] = [];
  corpus.forEach(([name, content], i) => {
    const cloudInit = verdicts[i]!;
    const ours = validateUserData(content, name);
    if (!cloudInit.startsWith('ignored') && !ours.ok) falseRefusals.push(`${name}: cloud-init uses it as ${cloudInit}, we say: ${ours.message}`);
    if (cloudInit.startsWith('ignored') && !ours.ok) alsoIgnoredByCloudInit.push(name);
    if (cloudInit.startsWith('ignored') && ours.ok) missed.push(`${name} (cloud-init: ${cloudInit})`);
  });
  t.diagnostic(`${corpus.length} files; refused by both: ${alsoIgnoredByCloudInit.length}; accepted by us but ignored by cloud-init: ${missed.length}`);
  for (const m of missed) t.diagnostic(`  not caught: ${m}`);
  assert.deepEqual(falseRefusals, [], 'files cloud-init accepts that we refuse');
  for (const bad of ['tab-indent', 'unclosed-double-quote', 'list-at-top', 'no-header', 'empty', 'binary', 'latin1', 'bom', 'two-documents', 'escape-char']) {
    assert.ok(alsoIgnoredByCloudInit.includes(bad), `${bad}: refused by us and ignored by cloud-init`);
  }
});
