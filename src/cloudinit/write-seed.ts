import { randomUUID } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { isMap, isScalar, isSeq, type Document } from 'yaml';
import type { VmConfig } from '../config/config.js';
import { hostError, inputError } from '../errors.js';
import type { CleanupStack } from '../lifecycle/cleanup-stack.js';
import { log } from '../log.js';
import type { GuestNic } from '../network/guest-nic.js';
import type { RuntimePaths } from '../paths.js';
import { ProgramError, runProgram } from '../process/run-program.js';
import { hashPassword } from './hash-password.js';
import { buildInstanceId, renderSeedFiles, SEED_LABEL, splitSshKeys, type SeedFile } from './render-seed.js';
import { readUserDataFile } from './validate-user-data.js';

/**
 * Validates the user-data and writes the cloud-init seed image; returns its path, or undefined when the VM
 * gets no seed.
 */
export async function writeSeed(
  config: VmConfig,
  paths: RuntimePaths,
  guestNics: GuestNic[],
  cleanup: CleanupStack,
): Promise<string | undefined> {
  let userData: Buffer | undefined;
  if (config.userDataPath !== undefined) {
    const read = readUserDataFile(config.userDataPath);
    if ('unreadable' in read) throw inputError(`user-data ${config.userDataPath} cannot be read (${read.unreadable}); check that it exists and is readable`);
    if (!read.result.ok) throw inputError(read.result.message);
    userData = read.bytes;
    for (const warning of read.result.check.warnings) log.warn(warning);
    if (read.result.check.cloudConfig) warnAboutOverrides(read.result.check.cloudConfig, config);
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
  });

  cleanup.defer('remove the cloud-init seed', () => rm(paths.seedDir, { recursive: true, force: true }).then(() => rm(paths.seedImage, { force: true })));
  await writeSeedFiles(paths.seedDir, files);
  await writeIso(paths.seedDir, paths.seedImage, SEED_LABEL[config.seedFormat]);

  const said = [
    `hostname ${config.hostname}`,
    ...(sshKeys.length > 0 ? [`${sshKeys.length} SSH key${sshKeys.length > 1 ? 's' : ''}`] : []),
    ...(config.password !== undefined ? ['a password'] : []),
    ...(guestNics.length > 0 ? [`network ${guestNics.map((n) => `${n.name} ${n.dhcp ? 'dhcp' : n.addresses.join(',') || 'up'}`).join(', ')}`] : []),
    ...(config.userDataPath !== undefined ? [`user-data ${path.basename(config.userDataPath)}`] : []),
  ];
  log.info(`cloud-init seed (${config.seedFormat}, instance-id ${instanceId}): ${said.join('; ')}`);
  return paths.seedImage;
}

/** Where the user's cloud-config quietly undoes --ssh-key or --password, say so (never quoting it). */
function warnAboutOverrides(doc: Document, config: VmConfig): void {
  const top = doc.contents;
  if (!isMap(top)) return;
  const users = doc.get('users', true);
  const hasDefault = (node: unknown) => (isScalar(node) ? node.value === 'default' : isMap(node) ? node.get('name') === 'default' : false);
  const noDefaultUser = (isSeq(users) && !users.items.some(hasDefault)) || (isScalar(users) && typeof users.value === 'string' && !/\bdefault\b/.test(users.value));
  const options = [...(config.sshKeys.length > 0 ? ['--ssh-key'] : []), ...(config.password !== undefined ? ['--password'] : [])];
  if (noDefaultUser && options.length > 0) {
    log.warn(`the user-data's users: list has no 'default' entry, so the image's default user is not created and ${options.join(' and ')} (for that user) has no effect; add '- default' to users:`);
  }
  if (config.sshKeys.length > 0 && doc.get('allow_public_ssh_keys') === false) {
    log.warn("the user-data sets allow_public_ssh_keys: false, so cloud-init ignores --ssh-key; remove that line or put the key in the user-data");
  }
  const chpasswd = doc.get('chpasswd', true);
  if (config.password !== undefined && (doc.has('password') || (isMap(chpasswd) && (chpasswd.has('users') || chpasswd.has('list'))))) {
    log.warn("the user-data sets passwords itself (password: or chpasswd:), and that wins over --password");
  }
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
