/**
 * Issue 15 item 1: an image that refers outside itself (backing files of every kind and protocol, a qcow2 external
 * data file, VMDK extents or parents in other files) is refused with one line and exit 3, before qemu-img or QEMU
 * opens what it refers to. Each hostile image points at a FIFO: opening the FIFO's write end waits until someone
 * opens it for reading, so the test sees any open of the reference, and it holds no data to leak. The ones that
 * point at /etc/passwd (as in the report) also check that none of it reached the cache.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { constants, existsSync, mkdirSync, mkdtempSync, openSync, closeSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runLauncher } from './helpers/launcher.js';
import { startHttpServer, type TestHttpServer } from './helpers/http-server.js';

const work = mkdtempSync(path.join(tmpdir(), 'snabbvm-refs-'));
const common = ['--accel', 'tcg', '--net', 'none', '--vnc', 'none', '--web', 'none', '--console', 'none'];
const qemuImg = (...args: string[]) => execFileSync('qemu-img', args, { cwd: work, stdio: ['ignore', 'ignore', 'pipe'] });
const filesUnder = (dir: string): string[] => (existsSync(dir) ? (readdirSync(dir, { recursive: true }) as string[]).filter((f) => statSync(path.join(dir, f)).isFile()) : []);
let server: TestHttpServer;

before(async () => {
  server = await startHttpServer();
});
after(async () => {
  await server?.close();
  rmSync(work, { recursive: true, force: true });
});

/** A FIFO that records whether anyone opened it for reading. */
function watchedFifo(fifo: string): { path: string; opened(): boolean; close(): void } {
  rmSync(fifo, { force: true });
  execFileSync('mkfifo', [fifo]);
  let opened = false;
  const writer = open(fifo, 'w').then((fh) => {
    opened = true;
    return fh.close();
  });
  return {
    path: fifo,
    opened: () => opened,
    close() {
      // a reader of our own ends the writer's wait
      const fd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
      void writer.finally(() => closeSync(fd));
    },
  };
}

/** A monolithicSparse VMDK made into one whose capacity is 0, so that QEMU takes the extents from its embedded descriptor. */
function sparseVmdkWithForeignExtent(file: string, target: string): void {
  qemuImg('create', '-q', '-f', 'vmdk', file, '1M');
  const bytes = readFileSync(file);
  bytes.writeBigUInt64LE(0n, 12);
  const descAt = Number(bytes.readBigUInt64LE(28)) * 512;
  const descLength = Number(bytes.readBigUInt64LE(36)) * 512;
  const descriptor = bytes.subarray(descAt, descAt + descLength).toString('latin1');
  const patched = descriptor.replace(/^RW \d+ SPARSE ".*"$/m, `RW 8 FLAT "${target}" 0`);
  assert.notEqual(patched, descriptor, 'the extent line was replaced');
  bytes.write(patched.padEnd(descLength, '\0').slice(0, descLength), descAt, 'latin1');
  writeFileSync(file, bytes);
}

/** Each case makes its image in `work` pointing at `target`, and returns its file name. */
const hostile: [string, (target: string) => string][] = [
  ['a qcow2 with a backing file', (t) => (qemuImg('create', '-q', '-f', 'qcow2', '-u', '-b', t, '-F', 'raw', 'backing.qcow2', '1M'), 'backing.qcow2')],
  ['a qcow2 with a json: backing spec', (t) => (qemuImg('create', '-q', '-f', 'qcow2', '-u', '-b', `json:{"file":{"driver":"file","filename":"${t}"}}`, '-F', 'raw', 'json.qcow2', '1M'), 'json.qcow2')],
  ['a qcow2 with an external data file', (t) => (qemuImg('create', '-q', '-f', 'qcow2', '-o', `data_file=${t}`, 'data-file.qcow2', '1M'), 'data-file.qcow2')],
  ['a qcow2 with a raw external data file', (t) => (qemuImg('create', '-q', '-f', 'qcow2', '-o', `data_file=${t},data_file_raw=on`, 'data-raw.qcow2', '1M'), 'data-raw.qcow2')],
  ['a qed with a backing file', (t) => (qemuImg('create', '-q', '-f', 'qed', '-u', '-b', t, '-F', 'raw', 'backing.qed', '1M'), 'backing.qed')],
  [
    'a VMDK text descriptor with an extent in another file',
    (t) => (writeFileSync(path.join(work, 'desc.vmdk'), `# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="monolithicFlat"\n\nRW 8 FLAT "${t}" 0\n\nddb.adapterType = "ide"\n`), 'desc.vmdk'),
  ],
  ['a sparse VMDK whose embedded descriptor has an extent in another file', (t) => (sparseVmdkWithForeignExtent(path.join(work, 'embedded.vmdk'), t), 'embedded.vmdk')],
];

describe('an image that refers outside itself is refused: one line, exit 3, the reference never opened', () => {
  for (const [what, make] of hostile) {
    test(`${what} (a local file)`, { timeout: 60_000 }, async () => {
      // made first (qemu-img create writes a data file), then the FIFO takes the target's place
      const target = path.join(work, `target-${hostile.findIndex(([w]) => w === what)}`);
      const file = make(target);
      const fifo = watchedFifo(target);
      const cacheDir = path.join(work, `cache-local-${file}`);
      try {
        const r = await runLauncher([...common, '--cache-dir', cacheDir, '--run-dir', path.join(work, 'run'), path.join(work, file)], { cwd: work });
        assert.equal(r.code, 3, r.stderr);
        assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
        assert.match(r.stderr, new RegExp(`^snabbvm: error: image .*${file} is refused: .*(backing file|data file|extents|extent in another file).*; snabbvm only takes images that refer to nothing outside themselves$`, 'm'));
        assert.equal(fifo.opened(), false, 'the reference was opened');
        assert.deepEqual(filesUnder(cacheDir), [], 'nothing in the cache');
      } finally {
        fifo.close();
      }
    });
  }

  const passwd = readFileSync('/etc/passwd', 'latin1');
  const firstLine = passwd.split('\n')[0]!;
  const downloads: [string, () => string, string][] = [
    ['a qcow2 backed by /etc/passwd', () => (qemuImg('create', '-q', '-f', 'qcow2', '-b', '/etc/passwd', '-F', 'raw', 'passwd.qcow2', '1M'), 'passwd.qcow2'), 'backing file \\("/etc/passwd"\\)'],
    [
      'a VMDK descriptor with the extent RW 8 FLAT "/etc/passwd" 0',
      () => (writeFileSync(path.join(work, 'passwd.vmdk'), '# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="monolithicFlat"\n\nRW 8 FLAT "/etc/passwd" 0\n'), 'passwd.vmdk'),
      'VMDK text descriptor',
    ],
    [
      'the same VMDK descriptor, xz-compressed (refused after unpacking)',
      () => (execFileSync('xz', ['-k', '-f', path.join(work, 'passwd.vmdk')]), 'passwd.vmdk.xz'),
      'VMDK text descriptor',
    ],
    ['a VMDK with a parent (parentFileNameHint)', () => {
      qemuImg('create', '-q', '-f', 'vmdk', 'parent.vmdk', '1M');
      qemuImg('create', '-q', '-f', 'vmdk', '-b', path.join(work, 'parent.vmdk'), '-F', 'vmdk', 'child.vmdk');
      return 'child.vmdk';
    }, 'VMDK with a parent file'],
    ['a qcow2 backed by an http: URL', () => (qemuImg('create', '-q', '-f', 'qcow2', '-u', '-b', server.url('/small.raw'), '-F', 'raw', 'http.qcow2', '1M'), 'http.qcow2'), 'backing file \\("http://'],
    ['a qcow2 backed by an nbd: export', () => (qemuImg('create', '-q', '-f', 'qcow2', '-u', '-b', 'nbd://127.0.0.1:1/x', '-F', 'raw', 'nbd.qcow2', '1M'), 'nbd.qcow2'), 'backing file \\("nbd://'],
  ];
  for (const [what, make, reason] of downloads) {
    test(`${what}, by URL: nothing of it is kept in the cache`, { timeout: 60_000 }, async () => {
      const file = make();
      server.serve(`/${file}`, path.join(work, file));
      const cacheDir = path.join(work, `cache-url-${file}`);
      mkdirSync(cacheDir, { recursive: true });
      const r = await runLauncher([...common, '--cache-dir', cacheDir, '--run-dir', path.join(work, 'run'), server.url(`/${file}`)], { cwd: work, env: { SNABBVM_HTTP_ATTEMPTS: '1' } });
      const errors = r.stderr.trim().split('\n').filter((l) => !/^snabbvm: (warning: )?(?!error)/.test(l));
      assert.equal(r.code, 3, r.stderr);
      assert.equal(errors.length, 1, r.stderr);
      assert.match(errors[0]!, new RegExp(`^snabbvm: error: http://127\\.0\\.0\\.1:\\d+/${file.replace(/\./g, '\\.')} is refused: .*${reason}`));
      assert.deepEqual(filesUnder(cacheDir), [], 'nothing in the cache');
      for (const f of filesUnder(cacheDir)) assert.equal(readFileSync(path.join(cacheDir, f), 'latin1').includes(firstLine), false);
    });
  }

  test('self-contained images are still taken: qcow2, monolithicSparse and streamOptimized VMDK', { timeout: 120_000 }, async () => {
    const raw = path.join(work, 'ok.raw');
    execFileSync('truncate', ['-s', '4M', raw]);
    execFileSync('bash', ['-c', `printf '\\x55\\xaa' | dd of=${raw} bs=1 seek=510 conv=notrunc status=none`]);
    qemuImg('convert', '-O', 'qcow2', raw, 'ok.qcow2');
    qemuImg('convert', '-O', 'vmdk', raw, 'ok-sparse.vmdk');
    qemuImg('convert', '-O', 'vmdk', '-o', 'subformat=streamOptimized', raw, 'ok-stream.vmdk');
    const { probeImage } = await import('../src/image/probe-image.js');
    for (const [file, format] of [['ok.qcow2', 'qcow2'], ['ok-sparse.vmdk', 'vmdk'], ['ok-stream.vmdk', 'vmdk']] as const) {
      assert.deepEqual(await probeImage(path.join(work, file)), { kind: 'disk', format, virtualSize: 4 << 20 }, file);
    }
  });
});
