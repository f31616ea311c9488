/**
 * Port specs under fuzzing (fast-check). Properties:
 * - total: any list of strings is either parsed or refused with ProblemsError, whose problems are all exit-3
 *   UserErrors of one line naming their port; nothing else is ever thrown;
 * - accepted means well-formed: a normalized PCI address, VLAN 1..4094, a unicast non-zero MAC, addresses that
 *   are dhcp or an IP with a prefix in range, rates in (0, 400], absolute socket paths of at most 107 bytes;
 * - a spec made of valid parts parses to exactly those parts, and rendering the parsed spec parses to the same;
 * - one defect in a valid spec (unknown key, bad value, repeated key, empty value, relative socket) is refused.
 */
import assert from 'node:assert/strict';
import { isIPv4, isIPv6 } from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { ExitCode, ProblemsError, UserError } from '../errors.js';
import { parsePortSpecs, type PortSpec } from './port-spec.js';

/** parses, or returns the problems; throws anything that is not the project's typed error */
function parse(texts: string[]): PortSpec[] | string[] {
  try {
    return parsePortSpecs(texts);
  } catch (err) {
    if (!(err instanceof ProblemsError)) throw err;
    for (const p of err.problems) {
      assert.ok(p instanceof UserError && p.exitCode === ExitCode.BadInput, String(p));
    }
    return err.problems.map((p) => p.message);
  }
}

function assertWellFormed(spec: PortSpec): void {
  if (spec.kind === 'pci') assert.match(spec.pci, /^[0-9a-f]{4}:[0-9a-f]{2}:[01][0-9a-f]\.[0-7]$/);
  const sockets = spec.kind === 'vhost-user' ? [spec.socket] : spec.kind === 'soft' ? [spec.peer] : [];
  for (const s of sockets) assert.ok(path.isAbsolute(s) && Buffer.byteLength(s) <= 107 && s !== '', s);
  if (spec.mac !== undefined) {
    assert.match(spec.mac, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
    assert.equal(parseInt(spec.mac.slice(0, 2), 16) & 1, 0);
    assert.notEqual(spec.mac, '00:00:00:00:00:00');
  }
  for (const a of spec.addresses) {
    if (a === 'dhcp') continue;
    const [ip, prefix] = a.split('/');
    assert.ok((isIPv4(ip!) && Number(prefix) <= 32) || (isIPv6(ip!) && Number(prefix) <= 128), a);
  }
  if (spec.kind === 'netdev') assert.ok(spec.ifname !== '' && Buffer.byteLength(spec.ifname) <= 15 && !/[/:,\s]/.test(spec.ifname), spec.ifname);
  if (spec.kind === 'pci' || spec.kind === 'soft') {
    if (spec.vlan !== undefined) assert.ok(Number.isInteger(spec.vlan) && spec.vlan >= 1 && spec.vlan <= 4094);
    for (const rate of [spec.rxPolice, spec.txPolice]) if (rate !== undefined) assert.ok(rate > 0 && rate <= 400);
    for (const f of [spec.ingress, spec.egress]) if (f !== undefined) assert.ok(f.trim() !== '' && !f.includes(','));
  }
}

/** The spec as text again, from its parsed fields. */
function render(spec: PortSpec): string {
  const head = spec.kind === 'pci' ? spec.pci : spec.kind === 'soft' ? `soft,peer=${spec.peer}` : spec.kind === 'netdev' ? `netdev:${spec.ifname}` : `vhost-user:${spec.socket}`;
  const pairs: string[] = [];
  if (spec.kind === 'pci' || spec.kind === 'soft') {
    if (spec.vlan !== undefined) pairs.push(`vlan=${spec.vlan}`);
    if (spec.rxPolice !== undefined) pairs.push(`rx_police=${spec.rxPolice}`);
    if (spec.txPolice !== undefined) pairs.push(`tx_police=${spec.txPolice}`);
    if (spec.ingress !== undefined) pairs.push(`ingress=${spec.ingress}`);
    if (spec.egress !== undefined) pairs.push(`egress=${spec.egress}`);
  }
  if (spec.mac !== undefined) pairs.push(`mac=${spec.mac}`);
  for (const a of spec.addresses) pairs.push(`ip=${a}`);
  return [head, ...pairs].join(',');
}
const withoutText = (s: PortSpec) => ({ ...s, text: '' });

// --- generators of valid parts --------------------------------------------------------------------------------
const hex = (n: number) => fc.stringMatching(new RegExp(`^[0-9a-fA-F]{${n}}$`));
const pci = fc.tuple(fc.option(hex(4), { nil: undefined }), hex(2), fc.stringMatching(/^[01][0-9a-fA-F]$/), fc.integer({ min: 0, max: 7 })).map(([d, b, s, f]) => `${d !== undefined ? `${d}:` : ''}${b}:${s}.${f}`);
const socket = fc.array(fc.stringMatching(/^[a-z0-9_.-]{1,12}$/).filter((s) => s !== '.' && s !== '..'), { minLength: 1, maxLength: 5 }).map((parts) => `/${parts.join('/')}.sock`);
const mac = fc.tuple(fc.integer({ min: 0, max: 127 }).map((b) => b * 2), fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 5, maxLength: 5 }))
  .filter(([first, rest]) => first !== 0 || rest.some((b) => b !== 0))
  .map(([first, rest]) => [first, ...rest].map((b) => b.toString(16).padStart(2, '0')).join(':'));
const ip = fc.oneof(
  fc.constant('dhcp'),
  fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 32 })).map(([a, p]) => `${a}/${p}`),
  fc.tuple(fc.ipV6(), fc.integer({ min: 0, max: 128 })).map(([a, p]) => `${a}/${p}`),
);
const rate = fc.oneof(fc.integer({ min: 1, max: 400 }).map(String), fc.tuple(fc.integer({ min: 0, max: 399 }), fc.integer({ min: 1, max: 9 })).map(([w, f]) => `${w}.${f}`));
const filter = fc.stringMatching(/^[a-z0-9 ]{1,30}$/).filter((f) => f.trim() !== '');
const trafficPairs = fc.record(
  { vlan: fc.integer({ min: 1, max: 4094 }).map((v) => `vlan=${v}`), mac: mac.map((m) => `mac=${m}`), rx: rate.map((r) => `rx_police=${r}`), tx: rate.map((r) => `tx_police=${r}`), ingress: filter.map((f) => `ingress=${f}`), egress: filter.map((f) => `egress=${f}`) },
  { requiredKeys: [] },
);
const validSpec = fc.oneof(
  fc.tuple(pci, trafficPairs, fc.array(ip, { maxLength: 3 })).map(([head, t, ips]) => [head, ...Object.values(t), ...ips.map((i) => `ip=${i}`)].join(',')),
  fc.tuple(socket, trafficPairs, fc.array(ip, { maxLength: 2 })).map(([peer, t, ips]) => ['soft', `peer=${peer}`, ...Object.values(t), ...ips.map((i) => `ip=${i}`)].join(',')),
  fc.tuple(socket, fc.option(mac, { nil: undefined }), fc.array(ip, { maxLength: 2 })).map(([s, m, ips]) => [`vhost-user:${s}`, ...(m ? [`mac=${m}`] : []), ...ips.map((i) => `ip=${i}`)].join(',')),
  fc.tuple(fc.stringMatching(/^[a-z][a-z0-9_.-]{0,14}$/), fc.option(mac, { nil: undefined }), fc.array(ip, { maxLength: 2 })).map(([n, m, ips]) => [`netdev:${n}`, ...(m ? [`mac=${m}`] : []), ...ips.map((i) => `ip=${i}`)].join(',')),
);

test('any list of strings is parsed or refused with one-line exit-3 problems; what is accepted is well-formed', () => {
  const piece = fc.constantFrom('0000:05:00.0', '05:00.1', 'soft', 'vhost-user:', 'netdev:', 'eth1', '/tmp/a.sock', 'vlan=', 'mac=', 'ip=', 'rx_police=', 'tx_police=', 'ingress=', 'egress=', 'peer=', ',', '=', '1', '4095', '0.5', 'dhcp', '10.0.0.1/24', 'ff', ':', '.', ' ', 'x');
  const text = fc.oneof(fc.string({ unit: 'binary', maxLength: 60 }), fc.array(piece, { maxLength: 12 }).map((p) => p.join('')), validSpec);
  fc.assert(
    fc.property(fc.array(text, { maxLength: 4 }), (texts) => {
      const result = parse(texts);
      if (typeof result[0] === 'string') {
        for (const m of result as string[]) assert.ok(!m.includes('\n') && /^(port \d+ '|PCI address|socket|MAC)/.test(m), m);
      } else {
        assert.equal(result.length, texts.length);
        (result as PortSpec[]).forEach(assertWellFormed);
      }
    }),
    { numRuns: 3000 },
  );
});

test('a spec of valid parts is accepted, and parsing its rendering gives the same spec', () => {
  fc.assert(
    fc.property(validSpec, (text) => {
      const result = parse([text]);
      assert.equal(typeof result[0], 'object', `${text}: ${String(result[0])}`);
      const spec = result[0] as PortSpec;
      assertWellFormed(spec);
      const again = parse([render(spec)]);
      assert.deepEqual(again.map((s) => withoutText(s as PortSpec)), [withoutText(spec)], render(spec));
    }),
    { numRuns: 1500 },
  );
});

test('one defect in a valid spec gets it refused, naming the port', () => {
  const defect = fc.oneof(
    fc.stringMatching(/^[a-z_]{1,10}$/).filter((k) => !['vlan', 'mac', 'ip', 'rx_police', 'tx_police', 'ingress', 'egress', 'peer'].includes(k)).map((k) => `${k}=1`),
    fc.oneof(fc.integer({ min: 4095, max: 99999 }).map(String), fc.constantFrom('0', '-1', '1.5', 'x', '0x10', ' 7')).map((v) => `vlan=${v}`),
    fc.tuple(fc.integer({ min: 0, max: 127 }).map((b) => b * 2 + 1), hex(2)).map(([b, h]) => `mac=${b.toString(16).padStart(2, '0')}:${h}:00:00:00:01`),
    fc.constantFrom('mac=00:00:00:00:00:00', 'mac=1:2:3:4:5:6', 'mac=zz:00:00:00:00:01', 'ip=10.0.0.1', 'ip=10.0.0.256/24', 'ip=10.0.0.1/33', 'ip=fe80::1/129', 'ip=', 'vlan', 'rx_police=0', 'rx_police=401', 'tx_police=-1', 'tx_police=1e3', 'ingress= ', 'egress='),
  );
  fc.assert(
    fc.property(fc.tuple(pci, trafficPairs), defect, ([head, t], bad) => {
      const text = [head, ...Object.values(t), bad].join(',');
      const result = parse(['0000:01:00.0', text]);
      assert.equal(typeof result[0], 'string', `${text} was accepted`);
      assert.ok((result as string[]).some((m) => m.startsWith(`port 2 '${text}'`)), (result as string[]).join('\n'));
    }),
    { numRuns: 1500 },
  );
  fc.assert(
    fc.property(fc.tuple(pci, trafficPairs).filter(([, t]) => Object.keys(t).length > 0), ([head, t]) => {
      const twice = Object.values(t)[0]!;
      assert.equal(typeof parse([[head, ...Object.values(t), twice].join(',')])[0], 'string');
    }),
  );
  fc.assert(
    fc.property(fc.stringMatching(/^[a-z.][a-z0-9_./]{0,20}$/), (relative) => {
      assert.equal(typeof parse([`vhost-user:${relative}`])[0], 'string');
      assert.equal(typeof parse([`soft,peer=${relative}`])[0], 'string');
    }),
  );
});
