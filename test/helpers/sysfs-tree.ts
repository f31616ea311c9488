import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** A PCI function in a fake sysfs tree. */
export interface FakePciDevice {
  address: string;
  vendor?: string;
  device?: string;
  /** bound kernel driver: adds bus/pci/drivers/<driver>/bind and the device's driver symlink */
  driver?: string;
  /** kernel interfaces under the device's net/ */
  netdevs?: string[];
  /** kernel interfaces under virtio0/net/, as a virtio NIC has them */
  virtioNetdevs?: string[];
  numaNode?: number;
}

export interface FakeSysfs {
  pci?: FakePciDevice[];
  /** the 2 MiB hugepage pool */
  hugepages?: { nr: number; free: number; resv?: number; surplus?: number };
  /** NUMA nodes with their cpulist and free 2 MiB pages */
  nodes?: { cpulist: string; nr?: number; free?: number }[];
}

/**
 * Builds a sysfs-like tree for --sysfs-root: just the files snabbvm reads (device vendor/device/numa_node,
 * driver and net/, the hugepage pool, NUMA nodes) and the driver bind files it writes.
 */
export function buildSysfsTree(spec: FakeSysfs, root = mkdtempSync(path.join(tmpdir(), 'snabbvm-sysfs-'))): string {
  const put = (rel: string, text: string) => {
    const file = path.join(root, rel);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, text);
  };
  mkdirSync(path.join(root, 'bus/pci/devices'), { recursive: true });
  for (const d of spec.pci ?? []) {
    const dev = `bus/pci/devices/${d.address}`;
    put(`${dev}/vendor`, `${d.vendor ?? '0x8086'}\n`);
    put(`${dev}/device`, `${d.device ?? '0x10fb'}\n`);
    put(`${dev}/numa_node`, `${d.numaNode ?? -1}\n`);
    if (d.driver) {
      put(`bus/pci/drivers/${d.driver}/bind`, '');
      symlinkSync(path.join(root, `bus/pci/drivers/${d.driver}`), path.join(root, dev, 'driver'));
    }
    for (const n of d.netdevs ?? []) put(`${dev}/net/${n}/operstate`, 'up\n');
    for (const n of d.virtioNetdevs ?? []) put(`${dev}/virtio0/net/${n}/operstate`, 'up\n');
  }
  if (spec.hugepages) {
    const h = spec.hugepages;
    put('kernel/mm/hugepages/hugepages-2048kB/nr_hugepages', `${h.nr}\n`);
    put('kernel/mm/hugepages/hugepages-2048kB/free_hugepages', `${h.free}\n`);
    put('kernel/mm/hugepages/hugepages-2048kB/resv_hugepages', `${h.resv ?? 0}\n`);
    put('kernel/mm/hugepages/hugepages-2048kB/surplus_hugepages', `${h.surplus ?? 0}\n`);
  }
  (spec.nodes ?? []).forEach((n, i) => {
    put(`devices/system/node/node${i}/cpulist`, `${n.cpulist}\n`);
    put(`devices/system/node/node${i}/hugepages/hugepages-2048kB/nr_hugepages`, `${n.nr ?? 0}\n`);
    put(`devices/system/node/node${i}/hugepages/hugepages-2048kB/free_hugepages`, `${n.free ?? 0}\n`);
  });
  return root;
}
