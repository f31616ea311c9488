import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { hostError } from '../errors.js';
import type { CleanupStack } from '../lifecycle/cleanup-stack.js';
import { log } from '../log.js';
import { ProgramError, runProgram } from '../process/run-program.js';

export const HUGEPAGE_KIB = 2048;

/**
 * 2 MiB pages one `snabbnfv traffic` takes for its packet buffers: Snabb allocates DMA memory in huge pages as
 * traffic needs them. Measured: about 6 idle, 17 for a two-port switch under a UDP flood (bench/snabb-switch.ts).
 */
export const SNABB_PAGES_PER_PROCESS = 32;

export interface HugepageNeed {
  guestPages: number;
  snabbPages: number;
  total: number;
}

/** Pages for the guest's memory plus each Snabb's own. Pure. */
export function planHugepages(guestMiB: number, snabbProcesses: number): HugepageNeed {
  const guestPages = Math.ceil((guestMiB * 1024) / HUGEPAGE_KIB);
  const snabbPages = snabbProcesses * SNABB_PAGES_PER_PROCESS;
  return { guestPages, snabbPages, total: guestPages + snabbPages };
}

/** The 2 MiB pool: its pages in total (with surplus), and pages nobody has taken or reserved yet. */
export interface HugepagePool {
  nr: number;
  available: number;
  /** the pool of one NUMA node, when the guest memory is bound there */
  node?: { node: number; nr: number; free: number };
}

/** Reads the pool from sysfs; undefined when the kernel has no 2 MiB huge pages. */
export function probeHugepages(sysfsRoot: string, node?: number): HugepagePool | undefined {
  const dir = path.join(sysfsRoot, `kernel/mm/hugepages/hugepages-${HUGEPAGE_KIB}kB`);
  const num = (file: string) => Number(readFileSync(file, 'utf8').trim());
  let pool: HugepagePool;
  try {
    // free_hugepages still counts pages that mappings have reserved but not touched yet (HugePages_Rsvd)
    const free = num(path.join(dir, 'free_hugepages'));
    let resv = 0;
    try {
      resv = num(path.join(dir, 'resv_hugepages'));
    } catch {}
    // surplus pages (allocated beyond nr_hugepages by overcommit, or left in use when the pool was shrunk) are
    // part of the pool a new nr_hugepages value must cover
    let surplus = 0;
    try {
      surplus = num(path.join(dir, 'surplus_hugepages'));
    } catch {}
    pool = { nr: num(path.join(dir, 'nr_hugepages')) + surplus, available: Math.max(0, free - resv) };
  } catch {
    return undefined;
  }
  if (node !== undefined) {
    const nodeDir = path.join(sysfsRoot, `devices/system/node/node${node}/hugepages/hugepages-${HUGEPAGE_KIB}kB`);
    try {
      pool.node = { node, nr: num(path.join(nodeDir, 'nr_hugepages')), free: num(path.join(nodeDir, 'free_hugepages')) };
    } catch {}
  }
  return pool;
}

/**
 * Why the pool can't hold what the VM needs, with the commands that reserve the rest; undefined when it can.
 * Pure.
 */
export function explainHugepageShortage(need: HugepageNeed, pool: HugepagePool | undefined, guestMiB: number): string | undefined {
  const breakdown = `${need.guestPages} for ${guestMiB} MiB of guest memory${need.snabbPages ? ` + ${need.snabbPages} for Snabb's packet buffers` : ''}`;
  if (pool === undefined) {
    return `the kernel offers no 2 MiB huge pages, and the VM needs ${need.total} (${breakdown}); boot the host with hugepages=${need.total}`;
  }
  const nodeFree = pool.node ? Math.min(pool.node.free, pool.available) : pool.available;
  if (nodeFree >= need.total) return undefined;
  const missing = need.total - nodeFree;
  const where = pool.node ? ` on NUMA node ${pool.node.node}` : '';
  const nowCmd = pool.node
    ? `echo ${pool.node.nr + missing} > /sys/devices/system/node/node${pool.node.node}/hugepages/hugepages-${HUGEPAGE_KIB}kB/nr_hugepages`
    : `sysctl vm.nr_hugepages=${pool.nr + missing}`;
  return (
    `too few 2 MiB huge pages${where}: the VM needs ${need.total} (${breakdown}), ${nodeFree} are free, ${missing} missing. ` +
    `Reserve them on the host now with: ${nowCmd}; or at every boot with the kernel option hugepages=${pool.nr + missing}`
  );
}

/** Whether /proc/self/mounts shows hugetlbfs mounted at dir. Pure. */
export function isHugetlbfsMounted(mountsText: string, dir: string): boolean {
  const want = path.resolve(dir);
  return mountsText.split('\n').some((line) => {
    const [, mountPoint, type] = line.split(' ');
    return type === 'hugetlbfs' && mountPoint !== undefined && unescapeMountPath(mountPoint) === want;
  });
}

/** /proc/mounts writes space, tab, newline and backslash as octal escapes. */
function unescapeMountPath(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Mounts hugetlbfs at dir unless it is there already; what it mounts it unmounts at teardown. */
export async function ensureHugetlbfs(dir: string, cleanup: CleanupStack): Promise<void> {
  if (isHugetlbfsMounted(readFileSync('/proc/self/mounts', 'utf8'), dir)) return;
  mkdirSync(dir, { recursive: true });
  try {
    await runProgram(['mount', '-t', 'hugetlbfs', '-o', `pagesize=${HUGEPAGE_KIB / 1024}M`, 'nodev', dir]);
  } catch (err) {
    const why = err instanceof ProgramError ? err.stderrTail.trim() : (err as Error).message;
    throw hostError(`cannot mount hugetlbfs at ${dir} (${why}); run the container with --privileged, or mount it: mount -t hugetlbfs nodev ${dir}`);
  }
  log.info(`mounted hugetlbfs at ${dir}`);
  cleanup.defer(`unmount ${dir}`, () => runProgram(['umount', dir]));
}
