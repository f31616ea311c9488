import type { VmConfig } from '../config/config.js';
import { inputError } from '../errors.js';
import type { BaseImage } from './prepare-disk.js';
import { DIRECT_FORMATS, probeImage } from './probe-image.js';

/**
 * Turns the first argument into a bootable base image. The user's file is only ever read.
 */
export async function resolveBaseImage(config: Pick<VmConfig, 'image' | 'cacheDir'>): Promise<BaseImage> {
  if (config.image.kind === 'url') {
    throw inputError(`image URLs are not supported yet (${config.image.url}); download it into /u`);
  }
  const path = config.image.path;
  const probed = await probeImage(path);
  switch (probed.kind) {
    case 'iso':
      return { kind: 'iso', path };
    case 'compressed':
      throw inputError(`image ${path} is ${probed.compression}-compressed, which is not supported yet; unpack it first`);
    case 'disk':
      if (!DIRECT_FORMATS.includes(probed.format)) {
        throw inputError(`image ${path} is ${probed.format}, which is not supported yet; qemu-img convert -O qcow2 it first`);
      }
      return { kind: 'disk', path, format: probed.format, virtualSize: probed.virtualSize };
  }
}
