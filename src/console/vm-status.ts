/**
 * What `snabbvm status` reports, as data. Built by the launcher (which owns QMP) and sent over the control socket;
 * the web console shows the same object. The JSON shape is documented in docs/consoles.md.
 */
export type VmRunState = 'starting' | 'running' | 'paused' | 'shutting-down' | 'stopped';

export interface PortCounters {
  rxPackets?: number;
  txPackets?: number;
  rxBytes?: number;
  txBytes?: number;
  rxDrops?: number;
  txDrops?: number;
}

/** One Snabb-driven port, as the Snabb supervisor publishes it in state.json's `ports`. */
export interface PortStatus {
  /** the guest's name for it: eth1, eth2, ... */
  name: string;
  /** pci | soft | vhost-user */
  kind?: string;
  /** PCI address, 'soft', or vhost-user:PATH */
  device?: string;
  mac?: string;
  /** Snabb's state (running, restarting, failed, ...), or external for a vhost-user: port served elsewhere */
  state: string;
  pid?: number;
  restarts: number;
  /** how the last Snabb process ended, in words */
  lastExit?: string;
  /** the Snabb log of this port */
  log?: string;
  counters?: PortCounters;
  /** when the supervisor last wrote this entry (ISO 8601) */
  updatedAt?: string;
}

export interface VmStatus {
  name: string;
  state: VmRunState;
  /** QEMU's own run state from QMP query-status: running, paused, shutdown, guest-panicked, ... */
  qemuStatus?: string | undefined;
  launcherPid?: number;
  qemuPid?: number;
  /** kvm or tcg: the accelerator QEMU runs under */
  accel?: string;
  /** why the VM runs under TCG although --accel auto wanted KVM (KVM missing, or broken: QEMU's reason) */
  accelFallback?: string;
  cpus?: number;
  memoryMiB?: number;
  /** when QEMU started (ISO 8601) */
  startedAt?: string;
  uptimeSec?: number;
  /** the guest's addresses, where known (DHCP leases, static config) */
  addresses: string[];
  /** where the consoles are: VNC listen address:port, the web console port, the tmux session name */
  vnc?: string;
  web?: number;
  tmuxSession?: string;
  ports: PortStatus[];
  /** the Snabb build the VM's Snabb-driven ports run (src/snabb/snabb-build.ts), when it has any */
  snabb?: { binary: string; version: string; patched?: boolean };
}

/** Our state from QEMU's status and whether a powerdown is under way. */
export function deriveVmState(qemuStatus: string | undefined, powerdownRequested: boolean): VmRunState {
  if (qemuStatus === undefined) return 'starting';
  if (qemuStatus === 'shutdown' || powerdownRequested) return 'shutting-down';
  if (qemuStatus === 'running') return 'running';
  if (qemuStatus === 'prelaunch' || qemuStatus === 'inmigrate') return 'starting';
  return 'paused';
}

/** dnsmasq's lease file: `expiry mac ip hostname client-id`, one lease a line. */
export function parseDnsmasqLeases(text: string): { mac: string; ip: string; hostname?: string }[] {
  return text
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f.length >= 3 && /^[0-9a-f:]{17}$/i.test(f[1]!))
    .map(([, mac, ip, hostname]) => (hostname && hostname !== '*' ? { mac: mac!.toLowerCase(), ip: ip!, hostname } : { mac: mac!.toLowerCase(), ip: ip! }));
}

/** The `ports` field of state.json, tolerating what a newer or older writer left there. */
export function parsePortStatuses(value: unknown): PortStatus[] {
  if (!Array.isArray(value)) return [];
  return value
    .filter((p): p is Record<string, unknown> => typeof p === 'object' && p !== null && typeof (p as { name?: unknown }).name === 'string')
    .map((p) => ({ ...p, name: p.name as string, state: typeof p.state === 'string' ? p.state : 'unknown', restarts: typeof p.restarts === 'number' ? p.restarts : 0 }) as PortStatus);
}

export function formatDuration(sec: number): string {
  const s = Math.floor(sec);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d}d${h}h`;
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m`;
  if (m > 0) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${s}s`;
}

function formatCount(n: number | undefined): string {
  if (n === undefined) return '-';
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)}G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return String(n);
}

/** The human-readable `snabbvm status`. */
export function renderStatusText(s: VmStatus): string {
  const facts = [
    s.uptimeSec !== undefined ? `up ${formatDuration(s.uptimeSec)}` : undefined,
    s.accel !== undefined && s.accelFallback !== undefined ? `${s.accel} (KVM does not work here: ${s.accelFallback})` : s.accel,
    s.cpus !== undefined ? `${s.cpus} vCPU` : undefined,
    s.memoryMiB !== undefined ? `${s.memoryMiB} MiB` : undefined,
  ].filter(Boolean);
  const lines = [`VM ${s.name}: ${s.state}${s.qemuStatus && s.qemuStatus !== s.state ? ` (QEMU: ${s.qemuStatus})` : ''}${facts.length ? `, ${facts.join(', ')}` : ''}`];
  if (s.state === 'stopped' || s.state === 'starting') {
    if (s.launcherPid !== undefined) lines.push(`  launcher pid ${s.launcherPid}`);
    return lines.join('\n');
  }
  lines.push(`  addresses: ${s.addresses.length ? s.addresses.join(', ') : 'not known yet'}`);
  const consoles = [
    s.vnc ? `VNC ${s.vnc}` : undefined,
    s.web !== undefined ? `web :${s.web}` : undefined,
    s.tmuxSession ? `tmux session ${s.tmuxSession} (snabbvm attach)` : undefined,
    'serial: snabbvm console',
  ].filter(Boolean);
  lines.push(`  consoles: ${consoles.join(', ')}`);
  if (s.snabb) lines.push(`  snabb: ${s.snabb.version}${s.snabb.patched ? ' (with our patch)' : s.snabb.patched === false ? ' (without our patch)' : ''}, ${s.snabb.binary}`);
  if (s.ports.length) {
    lines.push('  ports:');
    for (const p of s.ports) {
      const c = p.counters ?? {};
      const counters = p.counters
        ? `  rx ${formatCount(c.rxPackets)} pkts ${formatCount(c.rxBytes)}B  tx ${formatCount(c.txPackets)} pkts ${formatCount(c.txBytes)}B  drops ${formatCount((c.rxDrops ?? 0) + (c.txDrops ?? 0))}`
        : '';
      lines.push(`    ${p.name.padEnd(6)} ${(p.device ?? '').padEnd(14)} ${p.state.padEnd(10)} restarts ${p.restarts}${counters}${p.lastExit ? `  last exit: ${p.lastExit}` : ''}`);
    }
  }
  return lines.join('\n');
}

/** The part of the tmux status bar the launcher keeps current: state and addresses. */
export function renderStatusBar(s: Pick<VmStatus, 'state' | 'addresses'>): { state: string; addresses: string } {
  return { state: s.state.replace('-', ' '), addresses: s.addresses.join(' ') };
}
