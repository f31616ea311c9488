import { setTimeout as sleep } from 'node:timers/promises';
import { log } from '../log.js';
import { startProgram, type StartedProgram } from '../process/start-program.js';
import { ProgramError, type ExitInfo } from '../process/run-program.js';
import { readFileSync } from 'node:fs';
import { QmpClient, type QmpEvent } from './qmp-client.js';

/** How the VM ended. */
export type VmEnd =
  /** the guest powered itself off (also in answer to an ACPI powerdown) */
  | { how: 'guest-shutdown' }
  /** the guest ignored the powerdown for the whole timeout and was forced off */
  | { how: 'forced' }
  /** QEMU exited with no shutdown event: a crash, or killed from outside */
  | { how: 'crashed'; exit: ExitInfo; qemuLogTail: string };

export interface StartedQemu {
  readonly program: StartedProgram;
  readonly qmp: QmpClient;
  /** resolves when QEMU has exited, with how the VM ended */
  readonly ended: Promise<VmEnd>;
  /** ACPI powerdown, wait up to timeoutMs, then quit, SIGTERM, SIGKILL. Safe to call twice. */
  stop(timeoutMs: number): Promise<VmEnd>;
}

/** How often the power button is pressed again while waiting: a guest still booting may miss the first press. */
const POWERDOWN_REPEAT_MS = 15_000;

export async function startQemu(argv: string[], qmpSocket: string, qemuLog: string): Promise<StartedQemu> {
  const program = await startProgram(argv, { logFile: qemuLog });
  let qmp: QmpClient;
  // QEMU that fails at start (a bad argument, a missing file) exits before it serves QMP: report that at once,
  // with the last line QEMU wrote, and stop the connect retries so they don't hold the launcher for 30 s.
  const connecting = new AbortController();
  try {
    qmp = await Promise.race([
      QmpClient.connect(qmpSocket, 30_000, connecting.signal),
      program.exited.then((exit) => {
        throw new ProgramError(argv, exit, tail(qemuLog, 1));
      }),
    ]);
  } catch (err) {
    connecting.abort();
    await program.stop(2000);
    throw err;
  }

  let shutdownEvent: QmpEvent | undefined;
  qmp.on('event', (e) => {
    if (e.event === 'SHUTDOWN') shutdownEvent = e;
  });
  let forced = false;
  // set as soon as QEMU exits, so a stop() after the guest powered itself off does nothing
  let done = false;
  const ended: Promise<VmEnd> = program.exited.then((exit) => {
    done = true;
    qmp.close();
    if (forced) return { how: 'forced' };
    if (shutdownEvent?.data?.guest === true) return { how: 'guest-shutdown' };
    return { how: 'crashed', exit, qemuLogTail: tail(qemuLog) };
  });

  let stopping: Promise<VmEnd> | undefined;
  const stop = (timeoutMs: number): Promise<VmEnd> => {
    stopping ??= (async () => {
      const deadline = Date.now() + timeoutMs;
      while (!done && Date.now() < deadline) {
        await qmp.execute('system_powerdown').catch(() => {});
        await Promise.race([ended, sleep(Math.min(POWERDOWN_REPEAT_MS, Math.max(0, deadline - Date.now())))]);
      }
      if (!done) {
        forced = true;
        log.warn(`the guest did not power off within ${Math.round(timeoutMs / 1000)} s; forcing QEMU to quit`);
        await qmp.execute('quit').catch(() => {});
        await Promise.race([ended, sleep(3000)]);
        if (!done) await program.stop(3000);
      }
      return ended;
    })();
    return stopping;
  };

  return { program, qmp, ended, stop };
}

function tail(file: string, lines = 5): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}
