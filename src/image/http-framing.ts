/** The parts of HTTP/1.1 a download needs, as pure functions: the response head and chunked bodies. */

export interface ResponseHead {
  status: number;
  statusText: string;
  /** names in lower case; a repeated header's values joined with ", " */
  headers: Record<string, string>;
}

/** Parses a response head (the status line and the header lines, without the blank line that ends it). */
export function parseResponseHead(text: string): ResponseHead {
  const lines = text.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(lines[0] ?? '');
  if (!m) throw new Error(`the server's answer is not HTTP/1.x (${JSON.stringify((lines[0] ?? '').slice(0, 40))})`);
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw new Error(`the server sent a malformed header line (${JSON.stringify(line.slice(0, 40))})`);
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  return { status: Number(m[1]), statusText: m[2] ?? '', headers };
}

/**
 * Decodes a `Transfer-Encoding: chunked` body fed in arbitrary pieces. take() returns the body bytes at the start
 * of what it is given (in place, no copy) and what it has not looked at yet; call it until `done` or the input is
 * used up. Trailers are read and dropped.
 */
export class ChunkedDecoder {
  private state: 'size' | 'data' | 'data-end' | 'trailer' | 'done' = 'size';
  /** bytes of the chunk being read that are still to come */
  private left = 0;
  /** a size or trailer line split across reads */
  private line = '';

  get done(): boolean {
    return this.state === 'done';
  }

  take(input: Buffer): { piece: Buffer; rest: Buffer } {
    const empty = input.subarray(0, 0);
    let at = 0;
    while (at < input.length && this.state !== 'done') {
      if (this.state === 'data') {
        const n = Math.min(this.left, input.length - at);
        this.left -= n;
        if (this.left === 0) this.state = 'data-end';
        return { piece: input.subarray(at, at + n), rest: input.subarray(at + n) };
      }
      // the other states read lines
      const eol = input.indexOf(0x0a, at);
      const end = eol < 0 ? input.length : eol + 1;
      this.line += input.subarray(at, end).toString('latin1');
      at = end;
      if (eol < 0) {
        if (this.line.length > 4096) throw new Error('the chunked body has a line too long');
        continue;
      }
      const line = this.line.replace(/\r?\n$/, '');
      this.line = '';
      if (this.state === 'data-end') {
        if (line !== '') throw new Error('the chunked body has data past a chunk');
        this.state = 'size';
      } else if (this.state === 'size') {
        const size = /^([0-9a-fA-F]{1,13})\s*(;.*)?$/.exec(line);
        if (!size) throw new Error(`the chunked body has a bad chunk size (${JSON.stringify(line.slice(0, 20))})`);
        this.left = parseInt(size[1]!, 16);
        this.state = this.left === 0 ? 'trailer' : 'data';
      } else if (line === '') {
        this.state = 'done'; // the blank line after the trailers
      }
    }
    return { piece: empty, rest: input.subarray(at) };
  }
}
