/**
 * The deploy manifests (deploy/compose.yml, deploy/kubernetes/*.yaml) and the Dockerfile's health check: they parse,
 * and every option and environment variable they give the launcher exists in its option table today.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { positionalEnv, runOptions } from '../src/config/options.js';
import { repoRoot } from './helpers/fixtures.js';
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

describe('deploy manifests', () => {
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

  test('kubernetes: privileged, hugepages-2Mi requested and limited, hugepage and cache volumes, VNC port, liveness from snabbvm status, node selector', () => {
    const dir = path.join(repoRoot, 'deploy/kubernetes');
    const docs = readdirSync(dir)
      .filter((f) => /\.ya?ml$/.test(f))
      .flatMap((f) => readYamlDocuments(path.join(dir, f)));
    for (const d of docs) assert.ok(d.apiVersion && d.kind && d.metadata?.name, `every document is a Kubernetes object: ${JSON.stringify(d).slice(0, 80)}`);
    const workloads = docs.filter((d) => ['Pod', 'StatefulSet', 'Deployment'].includes(d.kind));
    assert.ok(workloads.length >= 1);
    for (const w of workloads) {
      const pod = (w.kind === 'Pod' ? w.spec : w.spec.template.spec) as Obj;
      const where = `${w.kind} ${w.metadata.name}`;
      assert.ok(pod.nodeSelector && Object.keys(pod.nodeSelector).length > 0, `${where}: a node selector for hosts with 82599 ports`);
      const c = (pod.containers as Obj[])[0]!;
      const env = Object.fromEntries(((c.env ?? []) as Obj[]).map((e) => [e.name, e.value]));
      checkLauncherInputs(where, env, [...(c.command ?? []), ...(c.args ?? [])]);
      assert.equal(c.securityContext?.privileged, true, `${where}: privileged`);
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
    }
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
