/**
 * The Docker side of the image tests and benchmarks: a ready dockerd (scripts/setup-docker.sh), the Debian 13 base
 * image (scripts/build-base-image.sh), and the snabbvm image built from the repo's Dockerfile.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { repoRoot } from './fixtures.js';

/** The client that matches Debian's engine (a newer one may sit in /usr/local/bin). */
export const DOCKER = '/usr/bin/docker';
/** Snabb on this machine (scripts/build-snabb.sh installs it): the image takes it with SNABB_SOURCE=local. */
export const HOST_SNABB = '/usr/local/bin/snabb';
/** The build HOST_SNABB is, as scripts/build-snabb.sh wrote it beside the binary. */
export const HOST_SNABB_VERSION = `${HOST_SNABB}.version`;
/** The original image's size, which ours must beat. */
export const ORIGINAL_IMAGE_MB = 374.5;
/** The bound issue 16 sets for the image with OVMF and virtiofsd in it (MB as `docker images` shows them). */
export const IMAGE_BUDGET_MB = 300;

/** Runs docker and returns its stdout; rejects with its stderr. */
export function docker(args: string[], options: { timeoutMs?: number; input?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(DOCKER, args, { encoding: 'utf8', maxBuffer: 64 << 20, timeout: options.timeoutMs ?? 120_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`docker ${args.join(' ')} failed: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
    if (options.input !== undefined) child.stdin!.end(options.input);
  });
}

/** Why the Docker tests cannot run here, or undefined. */
export function whyNoDockerTests(): string | undefined {
  if (process.getuid?.() !== 0) return 'the Docker tests need root (dockerd, debootstrap)';
  if (process.platform !== 'linux') return 'the Docker tests need Linux';
  return undefined;
}

export interface DockerSetup {
  /** the runtime dockerd runs containers with: runc, or the wrapper this machine needs for --privileged */
  runtime: string;
  serverVersion: string;
}

/** Installs and starts dockerd if needed (idempotent), and says which runtime it uses. */
export function setUpDocker(): DockerSetup {
  execFileSync('bash', [path.join(repoRoot, 'scripts/setup-docker.sh')], { stdio: ['ignore', 'inherit', 'inherit'] });
  const [runtime, serverVersion] = execFileSync(DOCKER, ['info', '--format', '{{.DefaultRuntime}} {{.ServerVersion}}'], { encoding: 'utf8' }).trim().split(' ');
  return { runtime: runtime!, serverVersion: serverVersion! };
}

/** The workaround in use for `--privileged`, in words for the test output. */
export function describePrivilegedWorkaround(setup: DockerSetup): string {
  return setup.runtime === 'runc'
    ? 'none needed: plain runc, the literal `docker run --privileged` as on users\' hosts'
    : `dockerd's default runtime is ${setup.runtime} (docker/runc-without-sys-resource: drops CAP_SYS_RESOURCE, which this machine's bounding set lacks), so the tests run the literal \`docker run --privileged\``;
}

/** The Debian 13 base image (debootstrap + docker import), cached by its inputs. Returns its tag. */
export function buildBaseImage(): string {
  return execFileSync('bash', [path.join(repoRoot, 'scripts/build-base-image.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
}

/**
 * A build context as `docker build .` in the repo sees it (the .dockerignore allow-list), plus what this machine
 * must add: its Snabb binary (SNABB_SOURCE=local) and the CA of its TLS-intercepting proxy, if any. Built in a
 * temp folder, so nothing is ever written into the repo.
 */
export function makeBuildContext(options: { snabb: 'local' | 'none' }): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'snabbvm-docker-context-'));
  const allowed = readFileSync(path.join(repoRoot, '.dockerignore'), 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('!'))
    .map((l) => l.slice(1).replace(/\/$/, ''));
  for (const entry of ['Dockerfile', '.dockerignore', ...allowed]) {
    const from = path.join(repoRoot, entry);
    if (existsSync(from)) cpSync(from, path.join(dir, entry), { recursive: true, filter: (src) => !src.includes('/node_modules') });
  }
  if (options.snabb === 'local') {
    copyFileSync(HOST_SNABB, path.join(dir, 'docker/snabb-local/snabb'));
    copyFileSync(HOST_SNABB_VERSION, path.join(dir, 'docker/snabb-local/snabb.version'));
  }
  const caDir = '/usr/local/share/ca-certificates';
  if (existsSync(caDir)) {
    for (const f of readdirSync(caDir).filter((f) => f.endsWith('.crt'))) copyFileSync(path.join(caDir, f), path.join(dir, 'docker/build-ca', f));
  }
  return dir;
}

/**
 * Builds the snabbvm image from the repo's Dockerfile with BuildKit: the base image from buildBaseImage(), and Snabb
 * from this machine (with its build in the label io.snabbvm.snabb.version, which the Dockerfile checks) or none.
 * Repeated builds are fast (every layer is cached by its inputs). Returns the build's output, which it also shows
 * when the build fails.
 */
export async function buildSnabbvmImage(options: { tag: string; baseImage: string; snabb: 'local' | 'none'; timeoutMs?: number }): Promise<string> {
  const context = makeBuildContext({ snabb: options.snabb });
  try {
    const args = ['build', '--progress=plain', '--build-arg', `BASE_IMAGE=${options.baseImage}`, '--build-arg', `SNABB_SOURCE=${options.snabb}`];
    if (options.snabb === 'local') args.push('--build-arg', `SNABB_BUILD_VERSION=${readFileSync(HOST_SNABB_VERSION, 'utf8').trim()}`);
    args.push('-t', options.tag, context);
    return await new Promise<string>((resolve, reject) => {
      const child = spawn(DOCKER, args, { env: { ...process.env, DOCKER_BUILDKIT: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (b: Buffer) => (out += b));
      child.stderr.on('data', (b: Buffer) => (out += b));
      const timer = setTimeout(() => child.kill('SIGTERM'), options.timeoutMs ?? 1_800_000);
      child.on('close', (code) => {
        clearTimeout(timer);
        if (code === 0) resolve(out);
        else reject(new Error(`docker build (SNABB_SOURCE=${options.snabb}) failed with code ${code}:\n${out.slice(-6000)}`));
      });
    });
  } finally {
    rmSync(context, { recursive: true, force: true });
  }
}

/** The image's size in MB (10^6 bytes, as `docker images` shows it). */
export async function imageSizeMb(tag: string): Promise<number> {
  return Number(await docker(['image', 'inspect', '--format', '{{.Size}}', tag])) / 1e6;
}

/** docker logs with terminal control sequences and line breaks removed (a -t container's logs are tmux's screen). */
export function flattenTerminalOutput(text: string): string {
  return text
    .replace(/\x1b\[[0-9;?]*[ -/]*[@-~]/g, '')
    .replace(/\x1b\][^\x07\x1b]*(\x07|\x1b\\)/g, '')
    .replace(/\x1b[()][A-Za-z0-9]/g, '')
    .replace(/\x1b[=>78DEHMNOZc]/g, '')
    .replace(/[\r\n]/g, '');
}

/** The container's address on the docker0 bridge. */
export async function containerIp(name: string): Promise<string> {
  return (await docker(['inspect', '--format', '{{.NetworkSettings.IPAddress}}', name])).trim();
}

/** docker0's own address: where a server the test runs on the host is reachable from containers. */
export function bridgeAddress(): string {
  const out = execFileSync('ip', ['-4', '-o', 'addr', 'show', 'dev', 'docker0'], { encoding: 'utf8' });
  const m = out.match(/inet (\d+\.\d+\.\d+\.\d+)\//);
  if (!m) throw new Error(`docker0 has no IPv4 address: ${out}`);
  return m[1]!;
}

/** Removes a container if it exists (a test's leftovers from an earlier, interrupted run). */
export async function removeContainer(name: string): Promise<void> {
  await docker(['rm', '-f', name]).catch(() => {});
}

/** A folder under the temp dir with the given files hard-linked (or copied) into it, for `-v DIR:/u`. */
export function makeUserFolder(prefix: string, files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  mkdirSync(dir, { recursive: true });
  for (const [name, from] of Object.entries(files)) {
    try {
      execFileSync('ln', [from, path.join(dir, name)]);
    } catch {
      copyFileSync(from, path.join(dir, name));
    }
  }
  return dir;
}
