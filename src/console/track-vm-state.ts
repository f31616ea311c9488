import { EventEmitter } from 'node:events';
import type { QmpClient } from '../qemu/qmp-client.js';
import { deriveVmState, type VmRunState } from './vm-status.js';

/**
 * The VM's state as QMP tells it: query-status at start and on demand, and QEMU's events in between
 * (STOP, RESUME, POWERDOWN, SHUTDOWN, RESET). 'change' fires when the state changes.
 */
export class VmStateTracker extends EventEmitter<{ change: [VmRunState] }> {
  private current: VmRunState = 'starting';
  private powerdownRequested = false;
  private ended = false;
  qemuStatus: string | undefined;
  /** when QEMU started (roughly: when the tracker did) */
  readonly startedAt = new Date();

  constructor(private readonly qmp: QmpClient) {
    super();
  }

  get state(): VmRunState {
    return this.current;
  }

  /** asks QEMU again; the state stays as it was if QEMU does not answer */
  async refresh(): Promise<VmRunState> {
    if (this.ended) return this.current;
    try {
      const r = await this.qmp.execute<{ status: string }>('query-status');
      this.qemuStatus = r.status;
    } catch {
      return this.current;
    }
    this.set(deriveVmState(this.qemuStatus, this.powerdownRequested));
    return this.current;
  }

  onEvent(event: string): void {
    if (event === 'POWERDOWN' || event === 'SHUTDOWN') this.powerdownRequested = true;
    // a guest that rebooted instead of powering off is running again
    if (event === 'RESET' && !this.ended) this.powerdownRequested = false;
    if (['STOP', 'RESUME', 'POWERDOWN', 'SHUTDOWN', 'RESET', 'GUEST_PANICKED'].includes(event)) void this.refresh();
  }

  onEnded(): void {
    this.ended = true;
    this.qemuStatus = undefined;
    this.set('stopped');
  }

  private set(state: VmRunState): void {
    if (state === this.current) return;
    this.current = state;
    this.emit('change', state);
  }
}

export async function trackVmState(qmp: QmpClient, ended: Promise<unknown>): Promise<VmStateTracker> {
  const tracker = new VmStateTracker(qmp);
  qmp.on('event', (e) => tracker.onEvent(e.event));
  void ended.then(() => tracker.onEnded());
  await tracker.refresh();
  return tracker;
}
