/**
 * examples/ and the advised grace period: the example compose files and the containerlab topology parse and use
 * only options that exist, their ports and user-data pass the launcher's own checks, and every place that advises
 * a Docker or Kubernetes grace period advises the same one, longer than the launcher's stop timeout.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { validateUserData } from '../cloudinit/validate-user-data.js';
import { parsePortSpec } from '../snabb/port-spec.js';
import { positionalEnv, runOptions } from './options.js';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const read = (file: string) => readFileSync(path.join(repoRoot, file), 'utf8');
const knownEnv = new Set([...runOptions.map((o) => o.env), ...Object.values(positionalEnv)]);
const stopTimeoutDefault = Number(runOptions.find((o) => o.key === 'stopTimeout')!.defaultText);
const GRACE_SECONDS = 90;

type Service = { environment?: Record<string, string>; command?: string[]; stop_grace_period?: string; volumes?: string[] };

function services(file: string): [string, Service][] {
  const [doc, ...more] = parseAllDocuments(read(file), { merge: true });
  assert.equal(more.length, 0, `${file}: one YAML document`);
  assert.deepEqual(doc!.errors.map(String), [], `${file} parses`);
  return Object.entries((doc!.toJS({ maxAliasCount: 100 }) as { services: Record<string, Service> }).services);
}

const exampleComposeFiles = readdirSync(path.join(repoRoot, 'examples')).filter((f) => /compose\.ya?ml$/.test(f)).map((f) => `examples/${f}`);

test('examples/: the compose files use only launcher options that exist, valid ports, and a grace period longer than the stop timeout', () => {
  assert.ok(exampleComposeFiles.includes('examples/compose.yml'));
  assert.ok(exampleComposeFiles.includes('examples/soft-link.compose.yml'));
  for (const file of exampleComposeFiles) {
    for (const [name, s] of services(file)) {
      const where = `${file} ${name}`;
      const env = s.environment ?? {};
      for (const variable of Object.keys(env)) assert.ok(knownEnv.has(variable), `${where}: ${variable} is not a launcher input (src/config/options.ts)`);
      assert.ok(env.SNABBVM_IMAGE ?? s.command?.[0], `${where}: an image`);
      assert.equal(env.SNABBVM_USER_DATA, 'user_data.txt', `${where}: the example user-data`);
      assert.ok(s.volumes?.some((v) => v.split(':')[1] === '/u'), `${where}: examples/ at /u`);
      for (const port of (env.SNABBVM_PORTS ?? '').split(/\s+/).filter((p) => p !== '')) {
        const problems: string[] = [];
        assert.ok(parsePortSpec(port, (m) => problems.push(m)), `${where}: ${port}: ${problems.join('; ')}`);
        assert.deepEqual(problems, [], `${where}: ${port}`);
      }
      const stopTimeout = Number(env.SNABBVM_STOP_TIMEOUT ?? stopTimeoutDefault);
      assert.equal(s.stop_grace_period, `${GRACE_SECONDS}s`, `${where}: the advised grace period`);
      assert.ok(GRACE_SECONDS > stopTimeout, `${where}: grace period > stop timeout ${stopTimeout} s`);
    }
  }
});

test('examples/soft-link.compose.yml: a soft port whose peer is the other VM\'s vhost-user socket, in a shared volume', () => {
  const [[, vm1], [, vm2]] = services('examples/soft-link.compose.yml') as [[string, Service], [string, Service]];
  const socket = /^vhost-user:([^,]+)/.exec(vm1.environment!.SNABBVM_PORTS!)?.[1];
  assert.ok(socket, 'vm1 serves a vhost-user socket');
  assert.match(vm2.environment!.SNABBVM_PORTS!, new RegExp(`^soft,peer=${socket}(,|$)`));
  const mountOf = (s: Service) => s.volumes!.find((v) => socket.startsWith(`${v.split(':')[1]}/`));
  assert.ok(mountOf(vm1) && mountOf(vm1) === mountOf(vm2), 'both mount the socket folder from the same volume');
});

test('examples/user_data.txt: cloud-config the launcher accepts without a warning, with a user, a password, a package and a runcmd marker', () => {
  const result = validateUserData(Buffer.from(read('examples/user_data.txt')), 'examples/user_data.txt');
  assert.ok(result.ok, result.ok ? '' : result.message);
  if (!result.ok) return;
  assert.equal(result.check.kind, 'cloud-config');
  assert.deepEqual(result.check.warnings, []);
  const config = result.check.cloudConfig!.toJS() as { users: unknown[]; packages: string[]; runcmd: string[] };
  assert.ok(config.users.some((u) => typeof u === 'object' && (u as { plain_text_passwd?: string }).plain_text_passwd));
  assert.ok(config.packages.length >= 1);
  assert.ok(config.runcmd.some((c) => /snabbvm-example: cloud-init finished/.test(c) && /\/dev\/ttyS0/.test(c)));
  assert.match(read('examples/user_data.txt'), /ssh_authorized_keys/, 'a place for an SSH key');
});

test(`one grace period everywhere: ${GRACE_SECONDS} s in the README, the docs, deploy/ and examples/`, () => {
  const files = ['README.md', ...readdirSync(path.join(repoRoot, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`), 'deploy/compose.yml', ...(readdirSync(path.join(repoRoot, 'deploy/kubernetes'), { recursive: true }) as string[]).filter((f) => /\.ya?ml$/.test(f)).map((f) => `deploy/kubernetes/${f}`), ...exampleComposeFiles];
  const advice = /docker run[^\n`]*--stop-timeout (\d+)|docker stop -t (\d+)|stop_grace_period: (\d+)s|terminationGracePeriodSeconds: (\d+)/g;
  let found = 0;
  for (const file of files) {
    for (const m of read(file).matchAll(advice)) {
      found++;
      assert.equal(Number(m.slice(1).find((g) => g !== undefined)), GRACE_SECONDS, `${file}: ${m[0]}`);
    }
  }
  assert.ok(found >= 8, `the grace period is advised in many places (found ${found})`);
});

test('examples/containerlab/: two linux nodes of the snabbvm image, launcher inputs only, /u bound, and netdev ports on the ends of their link', () => {
  const file = 'examples/containerlab/snabbvm.clab.yml';
  type Node = { kind?: string; image?: string; env?: Record<string, string>; binds?: string[]; cmd?: string };
  const [doc, ...more] = parseAllDocuments(read(file));
  assert.equal(more.length, 0);
  assert.deepEqual(doc!.errors.map(String), [], `${file} parses`);
  const { topology } = doc!.toJS() as { topology: { defaults?: Node; nodes: Record<string, Node>; links: { endpoints: string[] }[] } };
  const defaults = topology.defaults ?? {};
  const nodes = Object.entries(topology.nodes);
  assert.equal(nodes.length, 2);
  const netdevPorts = new Set<string>();
  for (const [name, node] of nodes) {
    // containerlab merges env and binds of defaults and node (the node wins)
    const env = { ...defaults.env, ...node.env };
    assert.equal(node.kind ?? defaults.kind, 'linux', name);
    assert.equal(node.image ?? defaults.image, 'snabbvm', name);
    for (const variable of Object.keys(env)) assert.ok(knownEnv.has(variable), `${name}: ${variable} is not a launcher input`);
    assert.ok(env.SNABBVM_IMAGE ?? node.cmd, `${name}: an image`);
    assert.ok([...(defaults.binds ?? []), ...(node.binds ?? [])].some((b) => b.split(':')[1] === '/u'), `${name}: a folder at /u`);
    assert.equal(env.SNABBVM_USER_DATA, 'user_data.txt');
    for (const port of (env.SNABBVM_PORTS ?? '').split(/\s+/).filter((p) => p !== '')) {
      const problems: string[] = [];
      const spec = parsePortSpec(port, (m) => problems.push(m));
      assert.deepEqual(problems, [], `${name}: ${port}`);
      if (spec?.kind === 'netdev') netdevPorts.add(`${name}:${spec.ifname}`);
    }
  }
  const endpoints = topology.links.flatMap((l) => l.endpoints);
  assert.deepEqual(endpoints, ['vm1:eth1', 'vm2:eth1']);
  assert.deepEqual([...netdevPorts].sort(), endpoints, 'each end of the link is a netdev: port of its node');
  const stopTimeout = Number(defaults.env?.SNABBVM_STOP_TIMEOUT ?? stopTimeoutDefault);
  assert.ok(stopTimeout < 120, "containerlab's destroy --graceful waits 120 s (its --timeout) for the guest's powerdown");
});
