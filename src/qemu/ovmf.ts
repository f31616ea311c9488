import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import type { VmConfig } from '../config/config.js';
import { hostError, oneLine } from '../errors.js';
import { chooseFirmware, probeBootSigns, type FirmwareChoice } from '../image/boot-firmware.js';
import { prepareEfiVars } from '../image/persist-disk.js';
import type { BaseImage } from '../image/prepare-disk.js';
import type { CleanupStack } from '../lifecycle/cleanup-stack.js';
import { log } from '../log.js';
import type { RuntimePaths } from '../paths.js';
import type { QemuPlan } from './qemu-plan.js';

/** Where Debian's `ovmf` package puts its firmware. */
export const OVMF_DIR = '/usr/share/OVMF';

/** OVMF's code (mapped read-only) and the template of its variable store (copied per VM), 4 MiB builds. */
export interface OvmfFiles {
  code: string;
  varsTemplate: string;
}

/** The OVMF files for --boot uefi, or exit 4 naming the package when they are missing. */
export function findOvmf(dir = OVMF_DIR): OvmfFiles {
  const files = { code: path.join(dir, 'OVMF_CODE_4M.fd'), varsTemplate: path.join(dir, 'OVMF_VARS_4M.fd') };
  for (const file of [files.code, files.varsTemplate]) {
    try {
      accessSync(file, constants.R_OK);
    } catch {
      throw hostError(`UEFI boot needs OVMF, and ${file} is missing; install Debian's ovmf package (apt-get install ovmf), or use --boot bios`);
    }
  }
  return files;
}

/**
 * --boot: the firmware for this VM, logged with why. SeaBIOS (undefined) or OVMF with the VM's own variable store,
 * kept next to its disk. The image is read as the guest will see it: the prepared disk through its overlay (with
 * --persist, what the guest made of it), or an ISO's boot catalog.
 */
export async function prepareFirmware(
  config: Pick<VmConfig, 'boot' | 'persist' | 'dataDir' | 'name'>,
  base: BaseImage,
  disk: string,
  paths: Pick<RuntimePaths, 'bootSectors' | 'efiVars'>,
  cleanup: CleanupStack,
  ovmfDir = OVMF_DIR,
): Promise<QemuPlan['uefi']> {
  const ovmf = config.boot === 'uefi' ? findOvmf(ovmfDir) : undefined; // fail before reading anything
  const image = base.kind === 'iso' ? { kind: 'iso' as const, path: base.path, format: 'raw' } : { kind: 'disk' as const, path: disk, format: 'qcow2' };
  let choice: FirmwareChoice & { warning?: string };
  try {
    choice = chooseFirmware(config.boot, await probeBootSigns(image, paths.bootSectors));
  } catch (err) {
    const why = `the ${image.kind === 'iso' ? 'ISO' : 'image'}'s first sectors could not be read (${oneLine((err as Error).message)})`;
    choice = config.boot === 'auto' ? { firmware: 'bios', reason: `--boot auto: ${why}; trying BIOS` } : { firmware: config.boot, reason: `--boot ${config.boot}` };
  }
  if (choice.warning !== undefined) log.warn(choice.warning);
  log.info(`firmware: ${choice.firmware === 'uefi' ? 'UEFI (OVMF)' : 'BIOS (SeaBIOS)'}, ${choice.reason}`);
  if (choice.firmware === 'bios') return undefined;
  const files = ovmf ?? findOvmf(ovmfDir);
  return { code: files.code, vars: await prepareEfiVars(files.varsTemplate, config, paths, cleanup) };
}
