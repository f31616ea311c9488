import { existsSync } from 'node:fs';
import path from 'node:path';
import { log } from '../log.js';

/** Levenshtein distance, for "did you mean". */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}

/**
 * The command an image argument was probably meant to be (`stauts` → status): it is no file, has no extension
 * and no folder, and is within two edits of a command's name. Otherwise undefined: it is an image name.
 */
export function mistypedCommand(imageArg: string, commands: readonly string[], baseDir: string): string | undefined {
  if (imageArg.includes('/') || imageArg.includes('.') || imageArg.includes(':')) return undefined;
  if (existsSync(path.resolve(baseDir, imageArg))) return undefined;
  let best: { name: string; distance: number } | undefined;
  for (const name of commands) {
    const distance = editDistance(imageArg.toLowerCase(), name);
    if (distance <= 2 && distance < imageArg.length && (best === undefined || distance < best.distance)) best = { name, distance };
  }
  return best?.name;
}

/** Spellings of other tools (lima, multipass, virt-install, QEMU) for which commander would suggest a wrong option. */
const OTHER_TOOLS_OPTIONS: Record<string, string> = {
  '--ram': '--memory',
  '--mem': '--memory',
  '--cpu': '--cpus',
  '--smp': '--cpus',
  '--vcpus': '--cpus',
  '--cloud-init': '--user-data',
};

/**
 * Commander's "unknown option" message as one line, with the snabbvm option another tool's spelling stands for
 * (`--ram 2G` → use --memory).
 */
export function unknownOptionMessage(commanderMessage: string): string {
  const message = commanderMessage.replace(/^error: /, '');
  const m = /unknown option '([^'=]+)/.exec(message);
  const ours = m ? OTHER_TOOLS_OPTIONS[m[1]!] : undefined;
  if (ours !== undefined) return `unknown option '${m![1]}'; use ${ours}`;
  return message.replace(/\s*\n\s*/g, ' ');
}

/**
 * qemux/qemu's environment variables (github.com/qemus/qemu), with what snabbvm takes instead. A user coming from
 * that image sets them and would otherwise see them ignored without a word.
 */
export const QEMUX_VARIABLES: Record<string, string> = {
  BOOT: 'give the image (a file in /u or a URL) as the argument, or in SNABBVM_IMAGE',
  RAM_SIZE: 'use --memory (SNABBVM_MEMORY)',
  CPU_CORES: 'use --cpus (SNABBVM_CPUS)',
  DISK_SIZE: 'use --disk-size (SNABBVM_DISK_SIZE)',
  DISK_FMT: 'snabbvm keeps the image as given and writes to a qcow2 overlay',
  DISK_TYPE: 'use --disk-bus virtio|scsi|sata|ide (SNABBVM_DISK_BUS)',
  DISK2_SIZE: 'use --disk SIZE (SNABBVM_DISKS) for each more disk',
  BOOT_MODE: 'use --boot uefi|bios|auto (SNABBVM_BOOT)',
  KVM: 'use --accel kvm|tcg (SNABBVM_ACCEL)',
  USER_PORTS: 'in --net nat every port except --forward-exclude reaches the VM; with --net user use --forward',
  ARGUMENTS: 'use --qemu-arg, once per argument (SNABBVM_QEMU_ARGS, separated by spaces)',
};

/** One warning per qemux/qemu variable set in the environment, naming the snabbvm option to use instead. */
export function qemuxVariableWarnings(env: NodeJS.ProcessEnv): string[] {
  return Object.entries(QEMUX_VARIABLES)
    .filter(([name]) => env[name] !== undefined && env[name] !== '')
    .map(([name, instead]) => `${name} is a qemux/qemu variable that snabbvm ignores: ${instead}`);
}

export function warnAboutQemuxVariables(env: NodeJS.ProcessEnv): void {
  for (const w of qemuxVariableWarnings(env)) log.warn(w);
}
