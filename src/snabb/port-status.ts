import { readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { readState } from '../lifecycle/claim-run-dir.js';
import type { RuntimePaths } from '../paths.js';
import type { SnabbBuild } from './snabb-build.js';
import { SNABB_SHM_ROOT, type SnabbState } from './supervise-snabb.js';

/** Packets through one VM port, from Snabb's shared-memory link counters. */
export interface PortCounters {
  /** from the VM into Snabb */
  txPackets: number;
  txBytes: number;
  /** from Snabb to the VM */
  rxPackets: number;
  rxBytes: number;
  /** dropped on the way to the VM (the guest did not keep up) */
  rxDrops: number;
}

/** One entry of state.json's `ports`, which `snabbvm status` shows. Documented in docs/snabb.md. */
export interface PortStatus {
  /** eth1, eth2, ... */
  name: string;
  kind: 'pci' | 'soft' | 'vhost-user' | 'netdev';
  /** the PCI address, 'soft', vhost-user:PATH or netdev:IFNAME */
  device: string;
  mac: string;
  /** the vhost-user socket QEMU serves (not for netdev: ports) */
  socket?: string;
  /** the tap of a netdev: port */
  tap?: string;
  /** Snabb's log (Snabb-driven ports only) */
  log?: string;
  /** external: no Snabb of ours (a vhost-user: port, whose backend runs elsewhere, or a netdev: port, which the kernel's tc carries) */
  state: SnabbState | 'external';
  pid?: number;
  restarts: number;
  lastExit?: string;
  counters?: PortCounters;
  /** when the supervisor last wrote this entry (ISO 8601) */
  updatedAt: string;
}

/**
 * Reads a port's counters from /var/run/snabb/<pid>/links: the link out of `<port>_Virtio.tx` carries what the
 * VM sent, the link into `<port>_Virtio.rx` what it was given. Undefined when Snabb has not made them yet.
 */
export function readSnabbCounters(pid: number, portId: string, shmRoot = SNABB_SHM_ROOT): PortCounters | undefined {
  const linksDir = path.join(shmRoot, String(pid), 'links');
  let links: string[];
  try {
    links = readdirSync(linksDir);
  } catch {
    return undefined;
  }
  const out = links.find((l) => l.startsWith(`${portId}_Virtio.tx -> `));
  const into = links.find((l) => l.endsWith(` -> ${portId}_Virtio.rx`));
  if (out === undefined || into === undefined) return undefined;
  const counter = (link: string, name: string) => {
    try {
      return Number(readFileSync(path.join(linksDir, link, `${name}.counter`)).readBigUInt64LE(0));
    } catch {
      return 0;
    }
  };
  return {
    txPackets: counter(out, 'txpackets'),
    txBytes: counter(out, 'txbytes'),
    rxPackets: counter(into, 'rxpackets'),
    rxBytes: counter(into, 'rxbytes'),
    rxDrops: counter(into, 'txdrop'),
  };
}

/**
 * Puts `ports` (and `snabb`, the build the launcher runs) into the launcher's state.json. Synchronous
 * read-modify-write with its own temp file, so it never interleaves with itself and never loses what the launcher
 * wrote before it.
 */
export function writePortsState(paths: Pick<RuntimePaths, 'stateFile'>, ports: PortStatus[], snabb?: SnabbBuild): void {
  const state = readState(paths as RuntimePaths);
  if (state === undefined) return; // the run folder is gone: teardown
  const tmp = `${paths.stateFile}.ports.tmp`;
  try {
    writeFileSync(tmp, JSON.stringify({ ...state, ports, ...(snabb ? { snabb } : {}) }, null, 2));
    renameSync(tmp, paths.stateFile);
  } catch {}
}
