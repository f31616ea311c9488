/** Launcher messages go to stderr, one line each, so stdout stays free for the serial console. */
let quiet = false;
export function setQuiet(q: boolean): void {
  quiet = q;
}
export const log = {
  info(msg: string): void {
    if (!quiet) process.stderr.write(`snabbvm: ${msg}\n`);
  },
  warn(msg: string): void {
    process.stderr.write(`snabbvm: warning: ${msg}\n`);
  },
  error(msg: string): void {
    process.stderr.write(`snabbvm: error: ${msg}\n`);
  },
};
