#!/usr/bin/env node
import { ExitCode, ProblemsError, UserError } from '../errors.js';
import { log } from '../log.js';
import { ProgramError } from '../process/run-program.js';
import { runCommand } from './run-command.js';

/**
 * The entry point. Sets process.exitCode rather than calling process.exit(), so output is flushed and
 * teardown finishes; every open handle is closed by then.
 */
async function main(argv: string[]): Promise<ExitCode> {
  try {
    return await runCommand(argv, process.env);
  } catch (err) {
    return reportError(err);
  }
}

/** Turns any error into one line per problem and an exit code; a stack trace only with SNABBVM_DEBUG=1. */
export function reportError(err: unknown): ExitCode {
  if (err instanceof ProblemsError) {
    for (const p of err.problems) log.error(p.message);
    return err.exitCode;
  }
  if (err instanceof UserError) {
    log.error(err.message);
    return err.exitCode;
  }
  if (err instanceof ProgramError && err.notFound) {
    log.error(`${err.argv[0]} is not installed; snabbvm needs it on the PATH (the snabbvm image has it)`);
    return ExitCode.HostNotReady;
  }
  log.error((err as Error).message ?? String(err));
  if (process.env.SNABBVM_DEBUG) console.error(err);
  return ExitCode.Failure;
}

process.exitCode = await main(process.argv.slice(2));
