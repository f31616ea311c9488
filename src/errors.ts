/** Exit codes, documented in the README. */
export const ExitCode = {
  /** The guest powered itself off (also in answer to an ACPI powerdown from `docker stop`). */
  Ok: 0,
  /** Anything else: QEMU crashed, an internal error. */
  Failure: 1,
  /** The command line is wrong: unknown option, bad option value, missing image argument. */
  Usage: 2,
  /** An input is wrong: the image, the user-data, a URL, a port spec. */
  BadInput: 3,
  /** The host is not ready: no KVM and TCG not allowed, no privileges, no hugepages. */
  HostNotReady: 4,
  /** The guest ignored the ACPI powerdown for --stop-timeout and was forced off. */
  Forced: 5,
  /** A VM of the same name (the same run folder) is already running: nothing was touched. */
  AlreadyRunning: 6,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/**
 * A message that quotes what the user gave (an option value, a port spec) stays one line: control characters in
 * it (a newline in an environment variable) are shown escaped, as \u000a.
 */
export function oneLine(message: string): string {
  return message.replace(/[\x00-\x1f\x7f-\x9f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** A problem the user can fix: printed as one line, no stack trace. */
export class UserError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode,
    options?: { cause?: unknown },
  ) {
    super(oneLine(message), options);
    this.name = 'UserError';
  }
}

/** Several problems found at once (validation collects all before it reports). */
export class ProblemsError extends Error {
  constructor(readonly problems: UserError[]) {
    super(problems.map((p) => p.message).join('\n'));
    this.name = 'ProblemsError';
  }
  /** The most basic category wins: a usage error before bad input before host trouble. */
  get exitCode(): ExitCode {
    return Math.min(...this.problems.map((p) => p.exitCode)) as ExitCode;
  }
}

export const usageError = (msg: string) => new UserError(msg, ExitCode.Usage);
export const inputError = (msg: string, cause?: unknown) => new UserError(msg, ExitCode.BadInput, { cause });
export const hostError = (msg: string, cause?: unknown) => new UserError(msg, ExitCode.HostNotReady, { cause });
