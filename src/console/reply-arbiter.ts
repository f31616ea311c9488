import { InputSplitter, QueryScanner, replyMayBeKey, type QueryKind } from './terminal-queries.js';

/** A query the guest asked and no terminal has answered yet. Older ones are forgotten: the guest stopped waiting. */
const QUERY_TTL_MS = 5000;
/**
 * A reply from another terminal than the one that answers is held this long for the answerer's own reply, so that
 * the guest's size queries (cursor position, then the far corner) all get one terminal's answers. systemd waits
 * about a third of a second for each reply.
 */
const HOLD_MS = 100;
/** At most this many queries wait at once: a guest that asks in a loop with no terminal attached costs no memory. */
const MAX_WAITING = 64;
/** How long an escape sequence cut at the end of a read waits for its rest before it is taken as keys. */
const INCOMPLETE_MS = 30;

export interface ArbiterTimings {
  queryTtlMs: number;
  holdMs: number;
  incompleteMs: number;
}

/** One attached terminal's way in. */
export interface TerminalInput {
  /** what the terminal sent: keystrokes pass at once, replies only when a live query of their kind waits */
  write(input: Buffer): void;
  /** the terminal is gone: it no longer answers */
  detach(): void;
}

interface Terminal {
  splitter: InputSplitter;
  attached: boolean;
  flushTimer?: NodeJS.Timeout;
}

interface PendingQuery {
  kind: QueryKind;
  askedAt: number;
  held?: { bytes: Buffer; from: Terminal; timer: NodeJS.Timeout };
}

/**
 * Sits between the terminals on a serial console and the guest. Keystrokes go to the guest from whoever types.
 * Each live query of the guest gets exactly one reply: from the terminal that typed last, or else (it did not
 * answer within a moment, or nobody typed yet) from the first to answer. Other terminals' replies, and replies to no live query (late
 * ones, or answers to old output replayed on a new terminal), are dropped.
 */
export class ReplyArbiter {
  private readonly scanner = new QueryScanner();
  private pending: PendingQuery[] = [];
  private answerer: Terminal | undefined;
  private readonly timings: ArbiterTimings;

  constructor(
    private readonly sendToGuest: (bytes: Buffer) => void,
    timings: Partial<ArbiterTimings> = {},
    private readonly now: () => number = Date.now,
  ) {
    this.timings = { queryTtlMs: QUERY_TTL_MS, holdMs: HOLD_MS, incompleteMs: INCOMPLETE_MS, ...timings };
  }

  /** what the guest wrote: the queries in it now wait for a reply */
  guestWrote(output: Buffer): void {
    const asked = this.scanner.scan(output);
    if (asked.length === 0) return;
    for (const kind of asked) this.pending.push({ kind, askedAt: this.now() });
    this.forgetOld();
    for (const dropped of this.pending.splice(0, Math.max(0, this.pending.length - MAX_WAITING))) clearTimeout(dropped.held?.timer);
  }

  /** a new terminal */
  attach(): TerminalInput {
    const terminal: Terminal = { splitter: new InputSplitter(), attached: true };
    return {
      write: (input) => this.fromTerminal(terminal, input),
      detach: () => {
        terminal.attached = false;
        clearTimeout(terminal.flushTimer);
        if (this.answerer === terminal) this.answerer = undefined;
      },
    };
  }

  /** how many queries wait for a reply now (for tests and status) */
  get waiting(): number {
    this.forgetOld();
    return this.pending.length;
  }

  private fromTerminal(terminal: Terminal, input: Buffer): void {
    if (!terminal.attached) return;
    clearTimeout(terminal.flushTimer);
    for (const piece of terminal.splitter.split(input)) {
      if ('keys' in piece) {
        this.sendToGuest(piece.keys);
        // the guest should see the size of the terminal in use; if it answers nothing (a pipe), the hold is short
        this.answerer = terminal;
      } else {
        this.reply(terminal, piece.reply, piece.bytes);
      }
    }
    if (terminal.splitter.holding) {
      terminal.flushTimer = setTimeout(() => {
        const keys = terminal.splitter.flush();
        if (keys && terminal.attached) this.sendToGuest(keys);
      }, this.timings.incompleteMs);
    }
  }

  private reply(terminal: Terminal, kind: QueryKind, bytes: Buffer): void {
    this.forgetOld();
    // a reply answers the oldest query of its kind that this terminal has not already had a reply held for
    const query = this.pending.find((q) => q.kind === kind && q.held?.from !== terminal);
    if (!query) {
      if (replyMayBeKey(kind, bytes)) this.sendToGuest(bytes);
      return;
    }
    const answerer = this.answerer;
    if (answerer === undefined || answerer === terminal || !answerer.attached) {
      this.deliver(query, terminal, bytes);
      return;
    }
    // another terminal answers this console: wait a moment for its reply before taking this one
    if (query.held) return;
    query.held = { bytes, from: terminal, timer: setTimeout(() => this.deliver(query, terminal, bytes), this.timings.holdMs) };
  }

  private deliver(query: PendingQuery, from: Terminal, bytes: Buffer): void {
    const at = this.pending.indexOf(query);
    if (at < 0) return;
    this.pending.splice(at, 1);
    if (query.held) clearTimeout(query.held.timer);
    this.answerer = from;
    this.sendToGuest(bytes);
  }

  private forgetOld(): void {
    const oldest = this.now() - this.timings.queryTtlMs;
    this.pending = this.pending.filter((q) => {
      if (q.askedAt >= oldest) return true;
      if (q.held) clearTimeout(q.held.timer);
      return false;
    });
  }
}
