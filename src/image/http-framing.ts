/** The parts of HTTP/1.1 a download needs, as pure functions: the response head and chunked bodies. */

export interface ResponseHead {
  status: number;
  statusText: string;
  /** names in lower case; a repeated header's values joined with ", " */
  headers: Record<string, string>;
}

/** RFC 9110 token characters: a header name is one token */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** a header value: visible characters, spaces and tabs, and obs-text; never a control character */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * Parses a response head (the status line and the header lines, without the blank line that ends it). Strict as
 * RFC 9112 asks of a client that must not be fooled about where a body ends: a header name is a token with no
 * space before its colon, a value holds no control character, a folded line (obs-fold) is refused.
 */
export function parseResponseHead(text: string): ResponseHead {
  const lines = text.split('\r\n');
  const m = /^HTTP\/1\.[01] ([1-9]\d{2})(?: ([\t\x20-\x7e\x80-\xff]*))?$/.exec(lines[0] ?? '');
  if (!m) throw new Error(`the server's answer is not HTTP/1.x (${JSON.stringify((lines[0] ?? '').slice(0, 40))})`);
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon);
    const value = line.slice(colon + 1).replace(/^[\t ]+|[\t ]+$/g, '');
    if (colon <= 0 || !TOKEN.test(name) || !FIELD_VALUE.test(value)) {
      throw new Error(`the server sent a malformed header line (${JSON.stringify(line.slice(0, 40))})`);
    }
    const lower = name.toLowerCase();
    headers[lower] = lower in headers ? `${headers[lower]}, ${value}` : value;
  }
  return { status: Number(m[1]), statusText: m[2] ?? '', headers };
}

/** How a response's body ends: at a length, with the last chunk, or when the connection closes. */
export type BodyFraming = { kind: 'length'; length: number } | { kind: 'chunked' } | { kind: 'close' };

/**
 * Where the body of a response to a GET ends (RFC 9112 section 6.3). Throws for anything ambiguous: a
 * Content-Length that is not digits alone (`-1`, `0x5`, `""`, `5, 11`, two headers), one with Transfer-Encoding,
 * or a transfer coding other than chunked (snabbvm asks for none). Pure.
 */
export function bodyFraming({ status, headers }: ResponseHead): BodyFraming {
  if (status === 204 || status === 304) return { kind: 'length', length: 0 };
  const te = headers['transfer-encoding'];
  const cl = headers['content-length'];
  if (te !== undefined) {
    if (cl !== undefined) throw new Error('the server sent both Transfer-Encoding and Content-Length, so where the body ends is ambiguous');
    if (!/^chunked$/i.test(te)) throw new Error(`the server sent Transfer-Encoding ${JSON.stringify(te.slice(0, 40))}; snabbvm takes only chunked`);
    return { kind: 'chunked' };
  }
  if (cl !== undefined) {
    // a repeated header was joined with ", ": two lengths, even equal ones, are refused (as Node's parser does)
    if (!/^\d{1,15}$/.test(cl)) throw new Error(`the server sent a malformed Content-Length (${JSON.stringify(cl.slice(0, 40))})`);
    return { kind: 'length', length: Number(cl) };
  }
  return { kind: 'close' };
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
      if (!this.line.endsWith('\r\n')) throw new Error('the chunked body has a line that does not end with CRLF');
      const line = this.line.slice(0, -2);
      this.line = '';
      if (this.state === 'data-end') {
        if (line !== '') throw new Error('the chunked body has data past a chunk');
        this.state = 'size';
      } else if (this.state === 'size') {
        const size = /^([0-9a-fA-F]{1,13})(;[\t\x20-\x7e\x80-\xff]*)?$/.exec(line);
        if (!size) throw new Error(`the chunked body has a bad chunk size (${JSON.stringify(line.slice(0, 20))})`);
        this.left = parseInt(size[1]!, 16);
        this.state = this.left === 0 ? 'trailer' : 'data';
      } else if (line === '') {
        this.state = 'done'; // the blank line after the trailers
      } else if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\t\x20-\x7e\x80-\xff]*$/.test(line)) {
        throw new Error(`the chunked body has a malformed trailer line (${JSON.stringify(line.slice(0, 20))})`);
      }
    }
    return { piece: empty, rest: input.subarray(at) };
  }
}
