import { hostError } from '../errors.js';
import type { CleanupStack } from '../lifecycle/cleanup-stack.js';
import { ProgramError, runProgram } from '../process/run-program.js';

/** One change to the container's network, as data: the command that makes it and the one that undoes it. */
export interface NetStep {
  /** what it does, for errors and cleanup logs: "create bridge br-vm1" */
  what: string;
  argv: string[];
  /** fed to argv's stdin (an nft rule set) */
  input?: string;
  /** registered on the cleanup stack the moment argv has succeeded */
  undo?: string[];
}

/** Runs the steps in order, each undo registered as soon as its step is done, so a failure unwinds exactly. */
export async function applySteps(steps: NetStep[], cleanup: CleanupStack): Promise<void> {
  for (const step of steps) {
    try {
      await runProgram(step.argv, step.input !== undefined ? { input: step.input } : {});
    } catch (err) {
      const why = err instanceof ProgramError ? err.stderrTail.trim().split('\n').pop() || err.message : (err as Error).message;
      throw hostError(`could not ${step.what} (${step.argv.join(' ')}): ${why}`, err);
    }
    const undo = step.undo;
    if (undo !== undefined) cleanup.deferRecorded(`undo: ${step.what}`, { argv: undo });
  }
}
