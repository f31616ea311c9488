import { log } from '../log.js';

/**
 * Teardown steps, run last-in first-out. Each resource registers its undo the moment it exists, so a start that
 * fails halfway unwinds exactly what it made. unwind() is safe to call twice and never throws: a failing step is
 * logged and the rest still run.
 */
export class CleanupStack {
  private readonly steps: { name: string; undo: () => unknown }[] = [];
  private unwinding: Promise<void> | undefined;

  defer(name: string, undo: () => unknown): void {
    this.steps.push({ name, undo });
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
