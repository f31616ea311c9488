import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { GuestMount } from '../cloudinit/render-seed.js';
import type { Share, ShareDriverMode, VmConfig } from '../config/config.js';
import { hostError } from '../errors.js';
import type { CleanupStack } from '../lifecycle/cleanup-stack.js';
import { log } from '../log.js';
import type { RuntimePaths } from '../paths.js';
import { ProgramError, runProgram } from '../process/run-program.js';
import { findOnPath, startProgram } from '../process/start-program.js';
import type { SharePlan } from '../qemu/qemu-plan.js';

/** Where Debian 13's virtiofsd package and QEMU's own packages up to 8.0 (Debian 12) put virtiofsd; it is not on PATH. */
export const VIRTIOFSD_PATHS = ['/usr/libexec/virtiofsd', '/usr/lib/qemu/virtiofsd'];

export function findVirtiofsd(candidates = VIRTIOFSD_PATHS): string | undefined {
  return findOnPath('virtiofsd') ?? candidates.find((c) => findOnPath(c) !== undefined);
}

export type ShareDriver = 'virtiofs' | '9p';

/**
 * The driver the shares use. virtiofs (faster, and its sandbox confines the daemon to the folder) needs Debian's
 * virtiofsd and root (it sets up a mount namespace); 9p is QEMU's own server. Pure.
 */
export function chooseShareDriver(mode: ShareDriverMode, facts: { virtiofsd: string | undefined; root: boolean }): ShareDriver {
  if (mode === '9p') return '9p';
  if (mode === 'virtiofs') {
    if (facts.virtiofsd === undefined) throw hostError(`--share-driver virtiofs: virtiofsd is not installed (looked on PATH and in ${VIRTIOFSD_PATHS.join(', ')}); install Debian's virtiofsd package, or use --share-driver 9p`);
    if (!facts.root) throw hostError('--share-driver virtiofs: virtiofsd needs root for its sandbox; run as root (as in the container), or use --share-driver 9p');
    return 'virtiofs';
  }
  return facts.virtiofsd !== undefined && facts.root ? 'virtiofs' : '9p';
}

/**
 * Which virtiofsd: Debian 13's (Rust, 1.x) or the older C one that QEMU up to 8.0 shipped (Debian 12's
 * qemu-system-common has it at /usr/lib/qemu/virtiofsd). They take the folder and options differently.
 */
export type VirtiofsdFlavour = 'rust' | 'qemu-c';

/** From `virtiofsd --version`: the C one says "virtiofsd version 7.2.x", the Rust one "virtiofsd 1.13.2". Pure. */
export const virtiofsdFlavour = (versionOutput: string): VirtiofsdFlavour => (/virtiofsd version \d/.test(versionOutput) ? 'qemu-c' : 'rust');

/** virtiofsd's command line: its namespace sandbox pivots into the folder, so nothing outside it can be reached. Pure. */
export function buildVirtiofsdArgv(binary: string, flavour: VirtiofsdFlavour, share: Share, socket: string): string[] {
  if (flavour === 'rust') return [binary, `--socket-path=${socket}`, `--shared-dir=${share.hostDir}`, '--sandbox=namespace', '--cache=auto'];
  // FUSE option lists split at commas; a backslash escapes one
  const source = share.hostDir.replace(/\\/g, '\\\\').replace(/,/g, '\\,');
  return [binary, `--socket-path=${socket}`, '-o', `source=${source}`, '-o', 'sandbox=namespace', '-o', 'cache=auto'];
}

export interface StartedShares {
  plans: SharePlan[];
  mounts: GuestMount[];
  /** virtiofs maps guest memory: QEMU must give it a shared backend */
  needsSharedMemory: boolean;
}

/** How long virtiofsd gets to create its socket; it takes milliseconds. */
const VIRTIOFSD_READY_MS = 10_000;

/**
 * Plans the shares and, for virtiofs, starts one virtiofsd per folder and waits for its socket (QEMU connects as
 * its client). Each virtiofsd is stopped at teardown; one that dies early fails the start with its own words.
 */
export async function startShares(config: VmConfig, paths: RuntimePaths, cleanup: CleanupStack): Promise<StartedShares> {
  if (config.shares.length === 0) return { plans: [], mounts: [], needsSharedMemory: false };
  const virtiofsd = findVirtiofsd();
  const driver = chooseShareDriver(config.shareDriver, { virtiofsd, root: process.getuid?.() === 0 });
  const mounts = config.shares.map((s) => ({ tag: s.tag, fstype: driver }));
  const said = config.shares.map((s) => `${s.hostDir} at /mnt/${s.tag}`).join(', ');
  if (driver === '9p') {
    if (config.shareDriver === 'auto') log.info(`shared folders by 9p (${virtiofsd === undefined ? 'virtiofsd is not installed' : 'virtiofsd needs root'}): ${said}`);
    else log.info(`shared folders by 9p: ${said}`);
    return { plans: config.shares.map((s) => ({ kind: '9p', tag: s.tag, hostDir: s.hostDir })), mounts, needsSharedMemory: false };
  }

  await mkdir(paths.sharesDir, { recursive: true, mode: 0o700 });
  const version = await runProgram([virtiofsd!, '--version']).then(
    (r) => r.stdout + r.stderr,
    (err: unknown) => (err instanceof ProgramError ? err.stderrTail : ''),
  );
  const flavour = virtiofsdFlavour(version);
  const plans: SharePlan[] = [];
  for (const [i, share] of config.shares.entries()) {
    const socket = paths.virtiofsdSocket(i);
    const logFile = paths.virtiofsdLog(i);
    const program = await startProgram(buildVirtiofsdArgv(virtiofsd!, flavour, share, socket), { logFile });
    let stopping = false;
    cleanup.defer(`stop virtiofsd for ${share.tag}`, () => {
      stopping = true;
      return program.stop(2000);
    });
    let exited = false;
    let ready = false;
    void program.exited.then(async (exit) => {
      exited = true;
      if (ready && !stopping) log.warn(`virtiofsd for /mnt/${share.tag} exited (${exit.signal ?? `code ${exit.code}`}); the guest can no longer use that folder: ${await logTail(logFile)}`);
    });
    for (const deadline = Date.now() + VIRTIOFSD_READY_MS; !existsSync(socket); await sleep(20)) {
      if (exited || Date.now() > deadline) {
        throw hostError(`virtiofsd could not share ${share.hostDir} (${exited ? 'it exited' : 'no socket after 10 s'}): ${await logTail(logFile)}; or use --share-driver 9p`);
      }
    }
    ready = true;
    plans.push({ kind: 'virtiofs', tag: share.tag, socket });
  }
  log.info(`shared folders by virtiofs (${virtiofsd}, ${version.split('\n')[0]!.trim()}): ${said}`);
  return { plans, mounts, needsSharedMemory: true };
}

async function logTail(file: string): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.trim().split('\n').slice(-3).join(' | ') || 'no output';
}
