import type { DiskBus } from '../config/config.js';
import type { RuntimePaths } from '../paths.js';

/** Everything QEMU's command line depends on, as data. Built by the planners, rendered by buildQemuArgv. */
export interface QemuPlan {
  binary: string;
  name: string;
  accel: 'kvm' | 'tcg';
  /** -machine; MACHINE_TYPE (q35) when not given */
  machine?: string;
  /** -cpu as the user gave it; undefined: host under KVM, max under TCG */
  cpuModel?: string;
  cpus: number;
  memoryMiB: number;
  memory: GuestMemory;
  /** the VM's writable disk: always a qcow2 overlay or a blank qcow2 */
  disk: string;
  /** more writable disks (qcow2), in order after the boot disk: /dev/vdb, /dev/vdc, ... with virtio */
  extraDisks?: string[];
  /** the bus the boot disk and the extra disks are on (default virtio) */
  diskBus?: DiskBus;
  /** UEFI: OVMF's code (read-only) and this VM's own copy of its variables; without it, SeaBIOS */
  uefi?: { code: string; vars: string };
  /** an ISO to boot from once, as a CD-ROM */
  cdrom?: string;
  /** the cloud-init seed image (raw ISO) */
  seed?: string;
  nics: NicPlan[];
  paths: RuntimePaths;
  vnc?: VncPlan;
  /** host folders for the guest (--share) */
  shares?: SharePlan[];
  /** tablet: absolute pointers (USB and virtio), so a VNC client's pointer lands where it points; ps2 or absent: none */
  pointer?: 'tablet' | 'ps2';
  /** --qemu-arg, appended last as given */
  extraArgs?: string[];
  /**
   * `vectors=0` on vhost-user NICs: QEMU < 8 under TCG segfaults in msix_set_vector_notifiers otherwise
   * (platform-facts.md). QEMU 10 does not need it.
   */
  vhostUserWithoutMsix: boolean;
}

export type GuestMemory =
  | { kind: 'anonymous' }
  /** hugetlbfs, shared so that a vhost-user backend (Snabb) can map it */
  | { kind: 'hugetlbfs'; dir: string; hostNode?: number }
  /** memfd, shared: enough for external vhost-user backends when no hugepages are free */
  | { kind: 'memfd' };

export type SharePlan =
  /** served by a virtiofsd listening on `socket`; needs shared guest memory */
  | { kind: 'virtiofs'; tag: string; socket: string }
  /** served by QEMU itself */
  | { kind: '9p'; tag: string; hostDir: string };

export type NicPlan =
  /** mtu: told to the guest (virtio host_mtu) for a netdev: port, whose interface may carry jumbo frames */
  | { kind: 'tap'; mac: string; ifname: string; mtu?: number }
  | { kind: 'user'; mac: string; forwards: { proto: 'tcp' | 'udp'; hostPort: number; guestPort: number }[] }
  | { kind: 'vhost-user'; mac: string; socket: string };

export interface VncPlan {
  listen: string;
  display: number;
  /** a file holding the password, read by QEMU as a secret, so it never shows on the command line */
  passwordFile?: string;
  /**
   * a second VNC display on this unix socket, for the web console's relay (never QEMU's websocket on loopback:
   * in --net user the guest reaches the host's loopback through 10.0.2.2)
   */
  webSocket?: string;
}
