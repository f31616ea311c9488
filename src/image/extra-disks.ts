import type { ExtraDiskSpec, VmConfig } from '../config/config.js';
import type { CleanupStack } from '../lifecycle/cleanup-stack.js';
import type { RuntimePaths } from '../paths.js';
import { planFileLocation, prepareDisk, type DiskToMake } from './persist-disk.js';
import { probeImage } from './probe-image.js';

/**
 * The --disk disks, in order: a file gets a qcow2 overlay (QEMU opens the file read-only, so it never changes), a
 * size a blank qcow2. Each lives next to the boot disk (disk1.qcow2, disk2.qcow2, ...) and is kept with --persist.
 */
export async function prepareExtraDisks(
  config: Pick<VmConfig, 'disks' | 'persist' | 'dataDir' | 'name'>,
  paths: Pick<RuntimePaths, 'extraDisk'>,
  cleanup: CleanupStack,
): Promise<string[]> {
  const made: string[] = [];
  for (const [i, spec] of config.disks.entries()) {
    const n = i + 1;
    made.push(await prepareDisk(await diskToMake(spec, n), planFileLocation(config, paths.extraDisk(n)), config.dataDir, cleanup));
  }
  return made;
}

async function diskToMake(spec: ExtraDiskSpec, n: number): Promise<DiskToMake> {
  const what = `disk ${n} (--disk)`;
  if (spec.kind === 'blank') return { base: { kind: 'blank' }, argument: 'blank', sizeBytes: spec.sizeBytes, sizeOption: '--disk', what };
  const probed = await probeImage(spec.path, `--disk ${spec.path}`, 'data');
  if (probed.kind !== 'disk') throw new Error(`unexpected ${probed.kind} from probeImage for a data disk`);
  return { base: { kind: 'disk', path: spec.path, format: probed.format, virtualSize: probed.virtualSize }, argument: spec.path, sizeOption: '--disk', what };
}
