import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { log } from '../log.js';
import { runProgram } from '../process/run-program.js';

/**
 * An undo that can be written down: a command to run, a file to write back (a sysctl under /proc/sys), or a
 * process to kill if it is still that process (its command line still holds `cmdlineHas`).
 */
export type UndoRecord = { argv: string[] } | { file: string; content: string } | { kill: number; cmdlineHas: string };

/**
 * Teardown steps, run last-in first-out. Each resource registers its undo the moment it exists, so a start that
 * fails halfway unwinds exactly what it made. unwind() is safe to call twice and never throws: a failing step is
 * logged and the rest still run.
 */
export class CleanupStack {
  private readonly steps: { name: string; undo: () => unknown }[] = [];
  private unwinding: Promise<void> | undefined;
  private journal: string | undefined;

  defer(name: string, undo: () => unknown): void {
    this.steps.push({ name, undo });
  }

  /**
   * An undo of a change outside the run folder (a bridge, an nft table, a sysctl). Besides the stack, it is
   * appended to the journal, so that when this launcher is killed (SIGKILL: no unwind), the next launcher of the
   * same VM can undo it (replayUndoJournal).
   */
  deferRecorded(name: string, record: UndoRecord): void {
    this.record(name, record);
    this.defer(name, () => runUndo(record));
  }

  /**
   * Only writes the undo to the journal, for what the launcher undoes otherwise on a normal stop: dnsmasq, which
   * loses its parent-death signal when it drops root, so it outlives a launcher killed with SIGKILL.
   */
  record(name: string, record: UndoRecord): void {
    if (this.journal !== undefined) appendFileSync(this.journal, `${JSON.stringify({ name, ...record })}\n`);
  }

  /** From now on, deferRecorded() and record() also write to this file. */
  journalTo(file: string): void {
    this.journal = file;
  }

  get size(): number {
    return this.steps.length;
  }

  unwind(): Promise<void> {
    this.unwinding ??= (async () => {
      for (let step = this.steps.pop(); step; step = this.steps.pop()) {
        try {
          await step.undo();
        } catch (err) {
          log.warn(`cleanup: ${step.name} failed: ${(err as Error).message}`);
        }
      }
    })();
    return this.unwinding;
  }
}

async function runUndo(record: UndoRecord): Promise<void> {
  if ('argv' in record) await runProgram(record.argv);
  else if ('kill' in record) await killIfStill(record.kill, record.cmdlineHas);
  else writeFileSync(record.file, record.content);
}

/** SIGKILL to pid if it is still the process whose command line holds `cmdlineHas`; waits until it is gone. */
async function killIfStill(pid: number, cmdlineHas: string): Promise<void> {
  const isIt = () => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(cmdlineHas);
    } catch {
      return false;
    }
  };
  if (!isIt()) return;
  process.kill(pid, 'SIGKILL');
  for (let i = 0; i < 100 && isIt(); i++) await sleep(50);
}

/**
 * Undoes, last first, what a launcher that died wrote in its journal. Steps it had undone itself before it died
 * fail again harmlessly (the bridge is gone already), so failures are ignored. Returns how
 * many steps succeeded.
 */
export async function replayUndoJournal(file: string): Promise<number> {
  let lines: string[];
  try {
    lines = readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '');
  } catch {
    return 0;
  }
  let undone = 0;
  for (const line of lines.reverse()) {
    try {
      await runUndo(JSON.parse(line) as UndoRecord);
      undone++;
    } catch {}
  }
  return undone;
}
