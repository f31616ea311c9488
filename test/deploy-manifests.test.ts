/**
 * The deploy manifests (deploy/compose.yml, deploy/kubernetes/**.yaml, examples/*compose.yml) and the Dockerfile's
 * health check: they parse, they pass the schemas of Kubernetes and of the Compose specification (unknown fields
 * included), and every option and environment variable they give the launcher exists in its option table today.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { positionalEnv, runOptions } from '../src/config/options.js';
import { devicePluginVariable } from '../src/snabb/device-plugin-ports.js';
import { parsePortSpec } from '../src/snabb/port-spec.js';
import { repoRoot } from './helpers/fixtures.js';
import { composeSchemaProblems, kubernetesSchemaProblems, type KubernetesDocument } from './helpers/manifest-schemas.js';
import { launcherPath } from './helpers/launcher.js';

type Obj = Record<string, any>;

function readYamlDocuments(file: string): Obj[] {
  const docs = parseAllDocuments(readFileSync(file, 'utf8'), { merge: true });
  for (const d of docs) assert.deepEqual(d.errors.map(String), [], `${file} parses`);
  return docs.map((d) => d.toJS({ maxAliasCount: 100 }) as Obj).filter((d) => d !== null);
}

const knownEnv = new Set([...runOptions.map((o) => o.env), ...Object.values(positionalEnv)]);
const knownFlags = new Set(runOptions.flatMap((o) => o.flags.split(/[ ,]+/).filter((w) => w.startsWith('-'))));
const stopTimeoutDefault = Number(runOptions.find((o) => o.key === 'stopTimeout')!.defaultText);
const cacheDirDefault = runOptions.find((o) => o.key === 'cacheDir')!.defaultText!;

/** Launcher flags in a command or args list (the image's ENTRYPOINT is the launcher, so these are its argv). */
function flagsIn(argv: unknown[] | undefined): string[] {
  return (argv ?? []).map(String).filter((a) => a.startsWith('-')).map((a) => a.split('=')[0]!);
}

function checkLauncherInputs(where: string, env: Record<string, unknown>, argv: unknown[] | undefined) {
  for (const name of Object.keys(env).filter((n) => n.startsWith('SNABBVM_') || n === 'NAME')) {
    assert.ok(name === 'NAME' || knownEnv.has(name), `${where}: ${name} is not an option of the launcher (src/config/options.ts)`);
  }
  for (const flag of flagsIn(argv)) assert.ok(knownFlags.has(flag), `${where}: ${flag} is not an option of the launcher`);
  const ports = [...(argv ?? []).map(String), ...String(env.SNABBVM_PORTS ?? '').split(/\s+/)];
  for (const port of ports.filter((a) => /^[0-9a-f]{4}:/.test(a))) {
    assert.match(port, /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/, `${where}: ${port} is a full PCI address`);
  }
}

const seconds = (d: string | number) => (typeof d === 'number' ? d : Number(d.replace(/s$/, '')));

/** Every object in deploy/kubernetes/ and below, with its file. */
function kubernetesDocuments(): KubernetesDocument[] {
  const dir = path.join(repoRoot, 'deploy/kubernetes');
  return (readdirSync(dir, { recursive: true }) as string[])
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .flatMap((f) => readYamlDocuments(path.join(dir, f)).map((object) => ({ where: `deploy/kubernetes/${f} ${object.kind} ${object.metadata?.name}`, object })));
}

const composeFiles = ['deploy/compose.yml', ...readdirSync(path.join(repoRoot, 'examples')).filter((f) => /compose\.ya?ml$/.test(f)).map((f) => `examples/${f}`)];

/** The Linux capabilities that replace `privileged` for Snabb's PCI ports and nat (docs/deploy.md). */
const LEAST_CAPABILITIES = ['SYS_ADMIN', 'IPC_LOCK', 'NET_ADMIN'];

describe('deploy manifests', () => {
  test('compose: deploy/compose.yml and examples/*compose.yml pass the Compose specification\'s schema', () => {
    assert.ok(composeFiles.length >= 3, composeFiles.join(', '));
    const problems = composeFiles.flatMap((f) => readYamlDocuments(path.join(repoRoot, f)).flatMap((doc) => composeSchemaProblems(f, doc)));
    assert.deepEqual(problems, []);
    const [compose] = readYamlDocuments(path.join(repoRoot, 'deploy/compose.yml'));
    const misspelt = structuredClone(compose!);
    misspelt.services.vm1.stop_grace_periods = '90s';
    assert.deepEqual(composeSchemaProblems('misspelt copy', misspelt), ["misspelt copy: /services/vm1 must NOT have additional properties 'stop_grace_periods'"]);
  });

  test('compose: two VMs, privileged, a stop grace period longer than the launcher\'s stop timeout, a shared image cache', () => {
    const [compose] = readYamlDocuments(path.join(repoRoot, 'deploy/compose.yml'));
    const services = Object.entries(compose!.services as Record<string, Obj>);
    assert.ok(services.length >= 2, 'two VMs');
    assert.ok(compose!.volumes && Object.keys(compose!.volumes).length >= 1, 'a named volume');
    for (const [name, s] of services) {
      const env = (s.environment ?? {}) as Record<string, string>;
      checkLauncherInputs(`compose ${name}`, env, s.command);
      assert.equal(s.privileged, true, `${name} is privileged`);
      const stopTimeout = Number(env.SNABBVM_STOP_TIMEOUT ?? stopTimeoutDefault);
      assert.ok(seconds(s.stop_grace_period) > stopTimeout, `${name}: stop_grace_period ${s.stop_grace_period} > stop timeout ${stopTimeout} s`);
      const cacheDir = env.SNABBVM_CACHE_DIR ?? cacheDirDefault;
      const cacheVolume = (s.volumes as string[]).find((v) => v.split(':')[1] === cacheDir);
      assert.ok(cacheVolume && cacheVolume.split(':')[0]! in compose!.volumes, `${name}: a named volume at the cache dir ${cacheDir}`);
      assert.ok((s.volumes as string[]).some((v) => v.split(':')[1] === '/u'), `${name}: a folder at /u`);
    }
    const names = services.map(([, s]) => (s.environment as Obj).SNABBVM_NAME);
    assert.equal(new Set(names).size, names.length, 'each VM has its own name (MACs, tmux session)');
  });

  test('kubernetes: every object passes Kubernetes\' schema (kubernetes-models), unknown fields included', async () => {
    const docs = kubernetesDocuments();
    assert.ok(docs.length >= 5, `the objects in deploy/kubernetes/ (found ${docs.length})`);
    assert.deepEqual(await kubernetesSchemaProblems(docs), []);
  });

  test('kubernetes: the schema check catches a misspelt field in a copy of the StatefulSet, and a missing required one', async () => {
    const statefulSet = kubernetesDocuments().find((d) => d.object.kind === 'StatefulSet')!;
    // the compiler stops at an object's first unknown field: one misspelling per copy
    const misspelt = structuredClone(statefulSet.object);
    const container = misspelt.spec.template.spec.containers[0];
    container.securityContext = { ...container.securityContext, privilegd: true };
    const misspeltPodSpec = structuredClone(statefulSet.object);
    misspeltPodSpec.spec.template.spec.terminationGracePeriodSecond = 90;
    const missing = structuredClone(statefulSet.object);
    delete missing.spec.template.spec.containers[0].name;
    const problems = await kubernetesSchemaProblems([
      { where: 'misspelt copy', object: misspelt },
      { where: 'misspelt copy 2', object: misspeltPodSpec },
      { where: 'unnamed container', object: missing },
    ]);
    assert.equal(problems.length, 4, problems.join('\n'));
    assert.match(problems.find((p) => p.includes('privilegd')) ?? '', /^misspelt copy: .*'privilegd' does not exist in type 'ISecurityContext'/);
    assert.match(problems.find((p) => p.includes('terminationGracePeriodSecond')) ?? '', /^misspelt copy 2: .*'terminationGracePeriodSecond' does not exist in type 'IPodSpec'/);
    // both checks see the missing name: the OpenAPI validator and the compiler
    assert.deepEqual(problems.filter((p) => p.startsWith('unnamed container')).map((p) => /required property name|Property 'name' is missing/.test(p)), [true, true]);
  });

  test('kubernetes: hugepages-2Mi requested and limited, hugepage and cache volumes, VNC port, liveness from snabbvm status, placement, privileged or the least privilege', () => {
    const docs = kubernetesDocuments().map((d) => d.object);
    for (const d of docs) assert.ok(d.apiVersion && d.kind && d.metadata?.name, `every document is a Kubernetes object: ${JSON.stringify(d).slice(0, 80)}`);
    const workloads = docs.filter((d) => ['Pod', 'StatefulSet', 'Deployment'].includes(d.kind));
    assert.ok(workloads.length >= 2, 'the privileged StatefulSet and the device plugin one');
    for (const w of workloads) {
      const pod = (w.kind === 'Pod' ? w.spec : w.spec.template.spec) as Obj;
      const where = `${w.kind} ${w.metadata.name}`;
      const c = (pod.containers as Obj[])[0]!;
      const env = Object.fromEntries(((c.env ?? []) as Obj[]).map((e) => [e.name, e.value]));
      checkLauncherInputs(where, env, [...(c.command ?? []), ...(c.args ?? [])]);
      const devicePluginResources = Object.keys(c.resources?.limits ?? {}).filter((r) => r.startsWith('intel.com/'));
      assert.ok(
        (pod.nodeSelector && Object.keys(pod.nodeSelector).length > 0) || devicePluginResources.length > 0,
        `${where}: a node selector for hosts with 82599 ports, or ports from a device plugin`,
      );
      for (const kind of ['requests', 'limits']) assert.ok(c.resources?.[kind]?.['hugepages-2Mi'], `${where}: hugepages-2Mi ${kind}`);
      const volumes = new Map(((pod.volumes ?? []) as Obj[]).map((v) => [v.name, v]));
      for (const t of (w.spec.volumeClaimTemplates ?? []) as Obj[]) volumes.set(t.metadata.name, t);
      const mountAt = (p: string) => ((c.volumeMounts ?? []) as Obj[]).find((m) => m.mountPath === p);
      const hugeMount = ((c.volumeMounts ?? []) as Obj[]).find((m) => /^HugePages/.test(volumes.get(m.name)?.emptyDir?.medium ?? ''));
      assert.ok(hugeMount, `${where}: a hugetlbfs volume (emptyDir medium HugePages)`);
      if (env.SNABBVM_HUGEPAGES_DIR) assert.equal(hugeMount.mountPath, env.SNABBVM_HUGEPAGES_DIR);
      const cacheDir = env.SNABBVM_CACHE_DIR ?? cacheDirDefault;
      assert.ok(mountAt(cacheDir) && volumes.has(mountAt(cacheDir)!.name), `${where}: a volume at the cache dir ${cacheDir}`);
      assert.ok(((c.ports ?? []) as Obj[]).some((p) => p.containerPort === 5901), `${where}: the VNC port`);
      assert.deepEqual(c.livenessProbe?.exec?.command, ['snabbvm', 'status'], `${where}: liveness from snabbvm status`);
      const stopTimeout = Number(env.SNABBVM_STOP_TIMEOUT ?? stopTimeoutDefault);
      assert.ok((pod.terminationGracePeriodSeconds ?? 30) > stopTimeout, `${where}: terminationGracePeriodSeconds > stop timeout ${stopTimeout} s`);
      if (c.securityContext?.privileged === true) continue;
      // the least privilege: the capabilities, the node's sysfs writable at /sys, the tun device, AppArmor off for mount(2)
      assert.deepEqual([...(c.securityContext?.capabilities?.add ?? [])].sort(), [...LEAST_CAPABILITIES].sort(), `${where}: the capabilities that replace privileged`);
      const hostPathAt = (p: string) => volumes.get(mountAt(p)?.name ?? '')?.hostPath?.path;
      assert.equal(hostPathAt('/sys'), '/sys', `${where}: the node's /sys at /sys`);
      assert.notEqual(mountAt('/sys')?.readOnly, true, `${where}: /sys writable (unbind, resource0)`);
      assert.equal(hostPathAt('/dev/net/tun'), '/dev/net/tun', `${where}: /dev/net/tun`);
      assert.equal(c.securityContext?.appArmorProfile?.type, 'Unconfined', `${where}: AppArmor allows Snabb's hugetlbfs mount`);
    }
  });

  test('kubernetes: the device plugin\'s resource is the one the StatefulSet requests and the launcher reads, selecting 82599 PFs on ixgbe', () => {
    const docs = kubernetesDocuments().map((d) => d.object);
    const config = docs.find((d) => d.kind === 'ConfigMap' && d.metadata.name === 'sriovdp-config');
    assert.ok(config, 'the SR-IOV network device plugin\'s ConfigMap');
    const { resourceList } = JSON.parse(config.data['config.json']) as { resourceList: Obj[] };
    assert.equal(resourceList.length, 1);
    const resource = resourceList[0]!;
    assert.deepEqual(resource.selectors, [{ vendors: ['8086'], devices: ['10fb'], drivers: ['ixgbe'] }]);
    const name = `${resource.resourcePrefix}/${resource.resourceName}`;
    const users = docs.filter((d) => d.kind === 'StatefulSet' && d.spec.template.spec.containers[0].resources?.limits?.[name]);
    assert.equal(users.length, 1, `one StatefulSet requests ${name}`);
    const c = users[0]!.spec.template.spec.containers[0] as Obj;
    const count = Number(c.resources.limits[name]);
    assert.equal(c.resources.requests[name], c.resources.limits[name], 'requests equal limits for a device');
    const env = Object.fromEntries((c.env as Obj[]).map((e) => [e.name, e.value]));
    assert.equal(devicePluginVariable(env.SNABBVM_PORTS_FROM_ENV), devicePluginVariable(name), 'the launcher reads the resource the pod requests');
    const options = (env.SNABBVM_PORT_OPTIONS as string).split(';');
    assert.ok(options.length <= count, `at most one option entry per port (${count})`);
    options.forEach((o, i) => {
      const problems: string[] = [];
      parsePortSpec(`0000:05:00.${i},${o}`, (m) => problems.push(m));
      assert.deepEqual(problems, [], `SNABBVM_PORT_OPTIONS entry ${i + 1} '${o}'`);
    });
  });

  test('the Dockerfile exposes VNC, stops with SIGTERM, and its health check is a launcher command that exists', () => {
    const dockerfile = readFileSync(path.join(repoRoot, 'Dockerfile'), 'utf8');
    assert.match(dockerfile, /^EXPOSE .*\b5901\b/m);
    assert.match(dockerfile, /^STOPSIGNAL SIGTERM$/m);
    const health = dockerfile.match(/^HEALTHCHECK .* CMD \["snabbvm", "(\w+)"\]$/m);
    assert.ok(health, 'HEALTHCHECK runs snabbvm <subcommand>');
    const help = execFileSync(process.execPath, [launcherPath, health[1]!, '--help'], { encoding: 'utf8' });
    assert.match(help, new RegExp(`snabbvm ${health[1]}`), `snabbvm ${health[1]} exists`);
  });
});
