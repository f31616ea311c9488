import { randomUUID } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { VmConfig } from '../config/config.js';
import { hostError, inputError } from '../errors.js';
import type { CleanupStack } from '../lifecycle/cleanup-stack.js';
import { log } from '../log.js';
import type { GuestNic } from '../network/guest-nic.js';
import type { RuntimePaths } from '../paths.js';
import { ProgramError, runProgram } from '../process/run-program.js';
import { hashPassword } from './hash-password.js';
import { buildInstanceId, renderSeedFiles, SEED_LABEL, splitSshKeys, type GuestMount, type SeedFile } from './render-seed.js';
import { overrideWarnings, readUserDataFile } from './validate-user-data.js';

/**
 * Validates the user-data and writes the cloud-init seed image (NoCloud or config drive); returns its path. Every VM
 * gets one: without -u it still carries the hostname, keys, password and network-config. Registers its removal.
 */
export async function writeSeed(
  config: VmConfig,
  paths: RuntimePaths,
  guestNics: GuestNic[],
  cleanup: CleanupStack,
  mounts: GuestMount[] = [],
): Promise<string | undefined> {
  let userData: Buffer | undefined;
  if (config.userDataPath !== undefined) {
    const read = readUserDataFile(config.userDataPath);
    if ('unreadable' in read) throw inputError(`user-data ${config.userDataPath} cannot be read (${read.unreadable}); check that it exists and is readable`);
    if (!read.result.ok) throw inputError(read.result.message);
    userData = read.bytes;
    for (const warning of read.result.check.warnings) log.warn(warning);
    if (read.result.check.cloudConfig) {
      for (const warning of overrideWarnings(read.result.check.cloudConfig, { sshKeys: config.sshKeys.length > 0, password: config.password !== undefined })) log.warn(warning);
    }
  }
  const sshKeys = splitSshKeys(config.sshKeys);
  const instanceId = buildInstanceId(config.name, config.image, config.newInstance ? randomUUID() : '');
  const files = renderSeedFiles({
    format: config.seedFormat,
    instanceId,
    hostname: config.hostname,
    sshKeys,
    ...(config.password !== undefined ? { passwordHash: hashPassword(config.password) } : {}),
    ...(userData !== undefined ? { userData } : {}),
    nics: guestNics,
    mounts,
  });

  cleanup.defer('remove the cloud-init seed', () => rm(paths.seedDir, { recursive: true, force: true }).then(() => rm(paths.seedImage, { force: true })));
  await writeSeedFiles(paths.seedDir, files);
  await writeIso(paths.seedDir, paths.seedImage, SEED_LABEL[config.seedFormat]);

  const said = [
    `hostname ${config.hostname}`,
    ...(sshKeys.length > 0 ? [`${sshKeys.length} SSH key${sshKeys.length > 1 ? 's' : ''}`] : []),
    ...(config.password !== undefined ? ['a password'] : []),
    ...(guestNics.length > 0 ? [`network ${guestNics.map((n) => `${n.name} ${n.dhcp ? 'dhcp' : n.addresses.join(',') || 'up'}`).join(', ')}`] : []),
    ...(mounts.length > 0 ? [`mounts ${mounts.map((m) => `/mnt/${m.tag}`).join(', ')}`] : []),
    ...(config.userDataPath !== undefined ? [`user-data ${path.basename(config.userDataPath)}`] : []),
  ];
  log.info(`cloud-init seed (${config.seedFormat}, instance-id ${instanceId}): ${said.join('; ')}`);
  return paths.seedImage;
}

async function writeSeedFiles(dir: string, files: SeedFile[]): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  for (const file of files) {
    const target = path.join(dir, file.path);
    await mkdir(path.dirname(target), { recursive: true, mode: 0o700 });
    await writeFile(target, file.content, { mode: 0o600 });
  }
}

/** An ISO 9660 image with Rock Ridge and Joliet names (cloud-init's file names are long and lowercase). */
async function writeIso(dir: string, iso: string, label: string): Promise<void> {
  const writers = [
    ['xorriso', '-as', 'mkisofs', '-quiet', '-V', label, '-J', '-R', '-o', iso, dir],
    ['genisoimage', '-quiet', '-V', label, '-J', '-R', '-o', iso, dir],
  ];
  for (const argv of writers) {
    try {
      await runProgram(argv);
      return;
    } catch (err) {
      if (err instanceof ProgramError && err.notFound) continue;
      throw err;
    }
  }
  throw hostError('cannot write the cloud-init seed image: neither xorriso nor genisoimage is installed (apt-get install xorriso)');
}
