import { readFileSync } from 'node:fs';
import { findOnPath } from '../process/start-program.js';

/** Which Snabb the launcher runs: what `snabbvm status --json` and state.json report as `snabb`. */
export interface SnabbBuild {
  /** the binary, resolved on the PATH */
  binary: string;
  /** from `<binary>.version`, written by scripts/build-snabb.sh and the Dockerfile, e.g. v2024.06+snabbvm.0123456789ab; else 'unknown' */
  version: string;
  /** whether snabb/*.patch is built in (the version says +snabbvm.<patch hash>); absent when the version is unknown */
  patched?: boolean;
}

/** Version strings our builds write: the release tag, then +snabbvm. and the first 12 hex digits of the patches' SHA-256. */
export const PATCHED_VERSION = /^(\S+)\+snabbvm\.([0-9a-f]{12})$/;

/**
 * Reads the version file beside the Snabb binary. `snabb --version` can't tell: v2024.06 prints a stale 2022.07,
 * patched or not.
 */
export function describeSnabbBuild(snabbBinary: string): SnabbBuild {
  const binary = findOnPath(snabbBinary) ?? snabbBinary;
  let version: string;
  try {
    version = readFileSync(`${binary}.version`, 'utf8').trim().split('\n')[0]!.trim();
  } catch {
    return { binary, version: 'unknown' };
  }
  if (version === '') return { binary, version: 'unknown' };
  return { binary, version, patched: PATCHED_VERSION.test(version) };
}
