/**
 * Terminal queries on a shared serial console.
 *
 * A guest asks its terminal things by writing escape sequences: where is the cursor (`ESC [ 6 n`, which systemd
 * 254+ sends on a serial getty to learn the screen size), what are you (`ESC [ c`), what colour is the background
 * (`ESC ] 11 ; ? BEL`), ... A terminal that sees one answers it by "typing" an escape sequence back. With many
 * terminals on one serial line, each would answer every query, and a terminal that attaches later and is shown the
 * recent output would answer queries the guest asked long ago: the answers land at the login prompt as text.
 *
 * So queries are kinds, matched to reply kinds. The replay a new terminal gets has its queries removed, and what
 * terminals send is split into keystrokes (always delivered) and replies (delivered once per live query).
 */

export type QueryKind = 'cursor' | 'status' | 'attributes' | 'secondary-attributes' | 'tertiary-attributes' | 'window' | 'colour' | 'setting' | 'mode' | 'version' | 'keyboard';

const ESC = '\x1b';
/** String terminator of OSC/DCS: BEL or ESC \ */
const ST = '(?:\\x07|\\x1b\\\\)';

/** Queries a guest writes, with the kind of reply each asks for. Matched on latin1 text. */
const QUERIES: [QueryKind, RegExp][] = [
  ['cursor', /\x1b\[\??6n/y],
  ['status', /\x1b\[5n/y],
  ['attributes', /\x1b\[0?c/y],
  ['secondary-attributes', /\x1b\[>0?c/y],
  ['tertiary-attributes', /\x1b\[=0?c/y],
  ['window', /\x1b\[(?:1[1345689]|2[01])t/y],
  ['colour', new RegExp(`\\x1b\\](?:4;\\d+|1[0-9]);\\?${ST}`, 'y')],
  ['setting', new RegExp(`\\x1bP\\$q[^\\x1b\\x07]*${ST}`, 'y')],
  ['mode', /\x1b\[\??\d+\$p/y],
  ['version', /\x1b\[>0?q/y],
  ['keyboard', /\x1b\[\?u/y],
];

/** Replies terminals send, by the kind of query they answer. */
const REPLIES: [QueryKind, RegExp][] = [
  ['cursor', /\x1b\[\??\d+;\d+R/y],
  ['status', /\x1b\[[03]n/y],
  ['attributes', /\x1b\[\?[\d;]*c/y],
  ['secondary-attributes', /\x1b\[>[\d;]*c/y],
  ['tertiary-attributes', new RegExp(`\\x1bP!\\|[0-9A-Fa-f]*${ST}`, 'y')],
  ['window', /\x1b\[(?:[1-2]|[3-9];\d+;\d+)t/y],
  ['window', new RegExp(`\\x1b\\][lL][^\\x1b\\x07]*${ST}`, 'y')],
  ['colour', new RegExp(`\\x1b\\](?:4;\\d+|1[0-9]);rgba?:[0-9A-Fa-f/]*${ST}`, 'y')],
  ['setting', new RegExp(`\\x1bP[01]\\$r[^\\x1b\\x07]*${ST}`, 'y')],
  ['mode', /\x1b\[\??\d+;\d\$y/y],
  ['version', new RegExp(`\\x1bP>\\|[^\\x1b\\x07]*${ST}`, 'y')],
  ['keyboard', /\x1b\[\?\d+u/y],
];

/** Shift/Ctrl/Alt-F3 in xterm is `ESC [ 1 ; <modifier> R`, the shape of a cursor report from row 1. */
const MODIFIED_F3 = /^\x1b\[1;[2-8]R$/;

/**
 * The start of an escape sequence that is still incomplete at the end of a chunk: its rest comes in the next one.
 * Only ESC [, ESC ] and ESC P sequences are held, and only while short, so a lone Escape key is never held.
 */
const INCOMPLETE_TAIL = /\x1b(?:\[[?>=]?[\d;]{0,32}\$?|\][^\x07\x1b]{0,64}|P[^\x07\x1b]{0,64}|[\]P][^\x07]{0,64}\x1b)?$/;

/** Each sequence of the table in the text, in order and not overlapping: its kind and where it starts and ends. */
function* sequencesIn(table: [QueryKind, RegExp][], text: string): Generator<{ kind: QueryKind; start: number; end: number }> {
  for (let at = text.indexOf(ESC); at >= 0; ) {
    let end = at + 1;
    for (const [kind, re] of table) {
      re.lastIndex = at;
      const m = re.exec(text);
      if (!m) continue;
      end = at + m[0].length;
      yield { kind, start: at, end };
      break;
    }
    at = text.indexOf(ESC, end);
  }
}

/** The output with every terminal query removed: what a terminal that attaches later is shown. */
export function stripQueries(output: Buffer): Buffer {
  const text = output.toString('latin1');
  let kept = '';
  let from = 0;
  for (const query of sequencesIn(QUERIES, text)) {
    kept += text.slice(from, query.start);
    from = query.end;
  }
  return from === 0 ? output : Buffer.from(kept + text.slice(from), 'latin1');
}

/** Finds the queries in the guest's output, also those split across chunks. */
export class QueryScanner {
  private carry = '';

  /** the kinds of the queries that this chunk completes, in order */
  scan(chunk: Buffer): QueryKind[] {
    const text = this.carry + chunk.toString('latin1');
    const found: QueryKind[] = [];
    let end = 0;
    for (const query of sequencesIn(QUERIES, text)) {
      found.push(query.kind);
      end = query.end;
    }
    const tail = INCOMPLETE_TAIL.exec(text.slice(end));
    this.carry = tail && tail[0].length > 0 ? tail[0] : '';
    return found;
  }
}

/** A piece of what a terminal sent: keystrokes, or a reply to a query of the given kind. */
export type InputPiece = { keys: Buffer } | { reply: QueryKind; bytes: Buffer };

/** Splits one terminal's input into keystrokes and replies, holding an incomplete sequence until the next chunk. */
export class InputSplitter {
  private carry = '';

  /** the pieces of this chunk; an incomplete escape sequence at its end is kept for the next call (or flush()) */
  split(chunk: Buffer): InputPiece[] {
    const text = this.carry + chunk.toString('latin1');
    const pieces: InputPiece[] = [];
    let from = 0;
    const keysUpTo = (at: number) => {
      if (at > from) pieces.push({ keys: Buffer.from(text.slice(from, at), 'latin1') });
    };
    for (const reply of sequencesIn(REPLIES, text)) {
      keysUpTo(reply.start);
      pieces.push({ reply: reply.kind, bytes: Buffer.from(text.slice(reply.start, reply.end), 'latin1') });
      from = reply.end;
    }
    const rest = text.slice(from);
    const tail = INCOMPLETE_TAIL.exec(rest);
    const held = tail && tail[0].length > 1 ? tail[0] : '';
    keysUpTo(text.length - held.length);
    this.carry = held;
    return pieces;
  }

  /** whatever is held, as keystrokes (the rest never came: it was a key such as Alt-[) */
  flush(): Buffer | undefined {
    const held = this.carry;
    this.carry = '';
    return held ? Buffer.from(held, 'latin1') : undefined;
  }

  get holding(): boolean {
    return this.carry.length > 0;
  }
}

/** A reply that looks like a key press when no query of its kind is waiting: Shift-F3 and friends. */
export function replyMayBeKey(reply: QueryKind, bytes: Buffer): boolean {
  return reply === 'cursor' && MODIFIED_F3.test(bytes.toString('latin1'));
}
