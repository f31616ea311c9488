/** Launcher messages go to stderr, one line each, so stdout stays free for the serial console. */
let quiet = false;
export function setQuiet(q: boolean): void {
  quiet = q;
}

/**
 * A password in a URL (https://user:password@host/...) is shown as ***, wherever the URL is quoted; so is a user
 * name alone (https://TOKEN@host/...), often a token.
 */
export function hidePasswords(text: string): string {
  return text.replace(/\b(https?:\/\/[^\s/:@]*):[^\s/@]*@/g, '$1:***@').replace(/\b(https?:\/\/)[^\s/:@]+@/g, '$1***@');
}

export const log = {
  info(msg: string): void {
    if (!quiet) process.stderr.write(`snabbvm: ${hidePasswords(msg)}\n`);
  },
  warn(msg: string): void {
    process.stderr.write(`snabbvm: warning: ${hidePasswords(msg)}\n`);
  },
  error(msg: string): void {
    process.stderr.write(`snabbvm: error: ${hidePasswords(msg)}\n`);
  },
};
