/**
 * Option values under fuzzing (fast-check), through the environment as a user sets them (SNABBVM_*) and through
 * the flags. Properties:
 * - total: any value of any option gives a config or the project's typed error (ProblemsError/UserError, exit 2
 *   or 3) with one line per problem; nothing else is thrown;
 * - accepted means well-formed: numbers in their ranges and equal to what was written, sizes exact, --ip an IPv4
 *   address with a prefix of 0..32, --gateway an IPv4 address, --forward ports 1..65535, listen addresses with
 *   nothing QEMU would read as another option (',' '='), a name tmux, paths and MACs can hold;
 * - out-of-range and malformed values are refused.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { isIP, isIPv4 } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { parseRunArgs } from '../cli/run-command.js';
import { ExitCode, ProblemsError, UserError } from '../errors.js';
import type { VmConfig } from './config.js';
import { loadConfig } from './load-config.js';
import { parseSize } from './size.js';

const dir = mkdtempSync(path.join(tmpdir(), 'snabbvm-config-fuzz-'));
writeFileSync(path.join(dir, 'disk.qcow2'), 'x');

/** the config for one option set in the environment (or as --flag=value), or the problems it gives */
function configWith(env: string, flag: string, value: string, via: 'env' | 'flag'): VmConfig | string[] {
  try {
    const argv = via === 'flag' ? [`${flag}=${value}`, 'disk.qcow2'] : ['disk.qcow2'];
    const vars = via === 'env' ? { [env]: value } : {};
    const parsed = parseRunArgs(argv, vars);
    assert.notEqual(parsed, 'exit');
    if (parsed === 'exit') throw new Error('unreachable');
    return loadConfig({ ...parsed, env: vars, baseDir: dir });
  } catch (err) {
    const problems = err instanceof ProblemsError ? err.problems : err instanceof UserError ? [err] : undefined;
    if (problems === undefined) throw err;
    for (const p of problems) {
      assert.ok(p.exitCode === ExitCode.Usage || p.exitCode === ExitCode.BadInput, p.message);
      assert.ok(!p.message.includes('\n') || /^[^\n]*$/.test(p.message), p.message);
    }
    return problems.map((p) => p.message);
  }
}

/** What an accepted value must satisfy, per option. */
const OPTIONS: { env: string; flag: string; accepted: (c: VmConfig, value: string) => void }[] = [
  { env: 'SNABBVM_CPUS', flag: '--cpus', accepted: (c, v) => assert.ok(c.cpus >= 1 && c.cpus <= 255 && c.cpus === Number(v.trim())) },
  { env: 'SNABBVM_STOP_TIMEOUT', flag: '--stop-timeout', accepted: (c, v) => assert.ok(c.stopTimeoutSec >= 0 && c.stopTimeoutSec <= 86400 && c.stopTimeoutSec === Number(v.trim())) },
  { env: 'SNABBVM_MEMORY', flag: '--memory', accepted: (c, v) => assert.ok(Number.isInteger(c.memoryMiB) && c.memoryMiB >= 64 && c.memoryMiB * 2 ** 20 === parseSize(v, 'M')) },
  { env: 'SNABBVM_DISK_SIZE', flag: '--disk-size', accepted: (c, v) => assert.ok(c.diskSizeBytes! >= 2 ** 20 && c.diskSizeBytes === parseSize(v)) },
  { env: 'SNABBVM_NAME', flag: '--name', accepted: (c) => assert.match(c.name, /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/) },
  { env: 'SNABBVM_HOSTNAME', flag: '--hostname', accepted: (c) => assert.match(c.hostname, /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/) },
  { env: 'SNABBVM_NET', flag: '--net', accepted: (c, v) => assert.ok(['nat', 'bridge', 'user', 'none'].includes(c.net) && c.net === v) },
  { env: 'SNABBVM_ACCEL', flag: '--accel', accepted: (c, v) => assert.ok(['auto', 'kvm', 'tcg'].includes(c.accel) && c.accel === v) },
  { env: 'SNABBVM_CONSOLE', flag: '--console', accepted: (c, v) => assert.equal(c.console, v) },
  {
    env: 'SNABBVM_IP',
    flag: '--ip',
    accepted: (c) => {
      const [address, prefix] = c.ip!.split('/');
      assert.ok(isIPv4(address!) && /^\d{1,2}$/.test(prefix!) && Number(prefix) <= 32, c.ip);
    },
  },
  { env: 'SNABBVM_FORWARD', flag: '--forward', accepted: (c) => c.forwards.forEach((f) => {
      const [proto, host, guest] = f.split(':');
      assert.ok(['tcp', 'udp'].includes(proto!) && [host, guest].every((p) => Number(p) >= 1 && Number(p) <= 65535), f);
    }) },
  { env: 'SNABBVM_FORWARD_EXCLUDE', flag: '--forward-exclude', accepted: (c) => c.forwardExclude.forEach((p) => assert.ok(p >= 1 && p <= 65535)) },
  { env: 'SNABBVM_VNC', flag: '--vnc', accepted: (c, v) => assert.ok(v === 'none' ? c.vncDisplay === undefined : c.vncDisplay! >= 0 && c.vncDisplay! <= 99) },
  { env: 'SNABBVM_WEB', flag: '--web', accepted: (c, v) => assert.ok(v === 'none' ? c.webPort === undefined : c.webPort! >= 1 && c.webPort! <= 65535) },
  { env: 'SNABBVM_VNC_LISTEN', flag: '--vnc-listen', accepted: (c) => assert.ok(!/[,=\s]/.test(c.vncListen) && (isIP(c.vncListen.replace(/^\[(.*)\]$/, '$1')) !== 0 || /^[A-Za-z0-9.-]+$/.test(c.vncListen)), c.vncListen) },
  { env: 'SNABBVM_WEB_LISTEN', flag: '--web-listen', accepted: (c) => assert.ok(!/[,=\s]/.test(c.webListen), c.webListen) },
  { env: 'SNABBVM_VNC_PASSWORD', flag: '--vnc-password', accepted: (c) => assert.ok(c.vncPassword!.length >= 1 && c.vncPassword!.length <= 8) },
  { env: 'SNABBVM_SHA256', flag: '--sha256', accepted: () => assert.fail('--sha256 with a file image must be refused') },
  { env: 'SNABBVM_SEED_FORMAT', flag: '--seed-format', accepted: (c, v) => assert.equal(c.seedFormat, v) },
];

/** values near the options' grammars, and anything at all */
const value = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: fc.constantFrom(...'0123456789.:/,=-+ xMGTtcpudnoe'.split('')), maxLength: 24 }),
  fc.integer({ min: -100000, max: 10 ** 7 }).map(String),
  fc.tuple(fc.constantFrom('tcp', 'udp', 'sctp', 'TCP'), fc.integer({ min: -1, max: 70000 }), fc.integer({ min: -1, max: 70000 })).map(([p, a, b]) => `${p}:${a}:${b}`),
  fc.tuple(fc.array(fc.integer({ min: 0, max: 999 }), { minLength: 3, maxLength: 5 }), fc.integer({ min: 0, max: 99 })).map(([o, p]) => `${o.join('.')}/${p}`),
  fc.array(fc.integer({ min: 0, max: 999 }), { minLength: 3, maxLength: 5 }).map((o) => o.join('.')),
  fc.constantFrom('none', 'nat', 'tcg', 'tmux', 'nocloud', '0.0.0.0', '::', '[::1]', 'localhost', '0.0.0.0,password=off', 'h,x=y', 'web.1', '-x', ''),
);

test('any value of any option gives a config whose value is well-formed, or typed one-line problems', () => {
  fc.assert(
    fc.property(fc.constantFrom(...OPTIONS), value, fc.constantFrom('env' as const, 'flag' as const), (option, v, via) => {
      const result = configWith(option.env, option.flag, v, via);
      if (!Array.isArray(result)) option.accepted(result, via === 'env' && option.env.includes('FORWARD') ? v : v);
    }),
    { numRuns: 3000 },
  );
});

test('malformed and out-of-range values are refused', () => {
  const refused = (env: string, v: string) => {
    const result = configWith(env, '', v, 'env');
    assert.ok(Array.isArray(result), `${env}=${JSON.stringify(v)} was accepted`);
  };
  fc.assert(
    fc.property(fc.oneof(fc.integer({ min: 256, max: 10 ** 9 }), fc.constant(0)), (n) => refused('SNABBVM_CPUS', String(n))),
  );
  fc.assert(
    fc.property(fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 256, max: 999 }), fc.integer({ min: 0, max: 32 })), ([a, bad, p]) => {
      refused('SNABBVM_IP', `${a}.${bad}.0.1/${p}`);
      refused('SNABBVM_GATEWAY', `${bad}.${a}.0.1`);
    }),
  );
  fc.assert(fc.property(fc.ipV4(), fc.integer({ min: 33, max: 99 }), (address, p) => refused('SNABBVM_IP', `${address}/${p}`)));
  fc.assert(
    fc.property(fc.constantFrom('tcp', 'udp'), fc.oneof(fc.constant(0), fc.integer({ min: 65536, max: 99999 })), fc.integer({ min: 1, max: 65535 }), fc.boolean(), (proto, bad, good, badFirst) =>
      refused('SNABBVM_FORWARD', badFirst ? `${proto}:${bad}:${good}` : `${proto}:${good}:${bad}`),
    ),
  );
  fc.assert(
    fc.property(fc.oneof(fc.ipV4(), fc.constantFrom('localhost', '::')), fc.constantFrom(',password=off', ',websocket=5700', ' x', '=1', ',', '/x'), (address, extra) => {
      refused('SNABBVM_VNC_LISTEN', `${address}${extra}`);
      refused('SNABBVM_WEB_LISTEN', `${address}${extra}`);
    }),
  );
  fc.assert(fc.property(fc.integer({ min: 0, max: 63 }), (n) => refused('SNABBVM_MEMORY', `${n}M`)));
  fc.assert(fc.property(fc.string({ minLength: 9, maxLength: 20 }), (pw) => refused('SNABBVM_VNC_PASSWORD', pw)));
});
