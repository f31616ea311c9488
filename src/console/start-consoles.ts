import type { VmConfig } from '../config/config.js';
import type { CleanupStack } from '../lifecycle/cleanup-stack.js';
import type { RuntimePaths } from '../paths.js';
import type { VncPlan } from '../qemu/qemu-plan.js';
import type { StartedQemu } from '../qemu/start-qemu.js';
import { startSerialStream } from './stream-serial.js';

/** VNC for QEMU's command line; a password goes into a file QEMU reads as a secret. */
export async function planVnc(config: VmConfig, _paths: RuntimePaths): Promise<VncPlan | undefined> {
  if (config.vncDisplay === undefined) return undefined;
  return { listen: config.vncListen, display: config.vncDisplay };
}

/**
 * The consoles a user sees once QEMU runs: serial to stdout when headless. Registers their teardown.
 * Called before QEMU starts (so no boot output is missed) with qemu undefined, and not again.
 */
export async function startConsoles(config: VmConfig, paths: RuntimePaths, cleanup: CleanupStack): Promise<void> {
  if (config.console === 'none') return;
  const serial = startSerialStream(paths.serialLog, process.stdout);
  cleanup.defer('stop serial stream', () => serial.stop());
}

/** Hook for consoles that need the running QEMU (tmux monitor window, status). */
export async function attachConsoles(_config: VmConfig, _paths: RuntimePaths, _qemu: StartedQemu, _cleanup: CleanupStack): Promise<void> {}
