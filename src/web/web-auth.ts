import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { hostname as osHostname } from 'node:os';

/** How long a login lasts; after that the page asks for the password again. */
export const SESSION_TTL_MS = 12 * 60 * 60 * 1000;
/** Sessions kept at most; the oldest goes first (each login makes one). */
const MAX_SESSIONS = 1000;

/**
 * The session cookie's name for one VM's web console. Browsers scope cookies by host name, not port, so two VMs'
 * consoles on one host need names of their own or each login would overwrite the other's cookie.
 */
export function sessionCookieName(vmName: string, port: number): string {
  return `snabbvm_${vmName.replace(/[^A-Za-z0-9_-]/g, '_')}_${port}`;
}

export type Verdict = 'ok' | 'denied' | 'busy';

/**
 * Who may use the web console. Without a password, anyone who reaches the port (as with VNC). With one, a browser
 * logs in with it and gets a session cookie holding a random token of its own that expires after SESSION_TTL_MS
 * or at logout; scripts can send the password as `Authorization: Bearer PASSWORD`. Every password check, from
 * the form or a bearer token, on any connection, goes through one GuessLimiter.
 */
export class WebAuth {
  /** token -> when it expires (ms since the epoch) */
  private readonly sessions = new Map<string, number>();
  private readonly sessionTtlMs: number;
  readonly limiter: GuessLimiter;

  constructor(
    private readonly password: string | undefined,
    readonly cookieName = 'snabbvm_web',
    options: { sessionTtlMs?: number; limiter?: GuessLimiter } = {},
  ) {
    this.sessionTtlMs = options.sessionTtlMs ?? SESSION_TTL_MS;
    this.limiter = options.limiter ?? new GuessLimiter();
  }

  get required(): boolean {
    return this.password !== undefined;
  }

  /** compares digests, so the time taken says nothing about the password's length or prefix; not rate-limited */
  passwordMatches(given: string): boolean {
    if (this.password === undefined) return true;
    return timingSafeEqual(sha256(given), sha256(this.password));
  }

  /** a password check through the limiter: 'busy' when too many guesses are waiting (nothing was checked) */
  checkPassword(given: string): Promise<Verdict> {
    return this.limiter.attempt(() => this.passwordMatches(given));
  }

  /** the session cookie, else the bearer password (through the limiter) */
  async authorize(req: IncomingMessage): Promise<Verdict> {
    if (this.password === undefined || this.hasSession(req)) return 'ok';
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (bearer === undefined) return 'denied';
    return this.checkPassword(bearer);
  }

  hasSession(req: IncomingMessage): boolean {
    const token = parseCookies(req.headers.cookie)[this.cookieName];
    if (token === undefined) return false;
    const expires = this.sessions.get(token); // a Map lookup: the token is 256 random bits, nothing to time
    if (expires === undefined) return false;
    if (expires > Date.now()) return true;
    this.sessions.delete(token);
    return false;
  }

  /** a new session after a good login: its Set-Cookie header value */
  newSession(): string {
    const now = Date.now();
    for (const [token, expires] of this.sessions) if (expires <= now || this.sessions.size >= MAX_SESSIONS) this.sessions.delete(token);
    const token = randomBytes(32).toString('base64url');
    this.sessions.set(token, now + this.sessionTtlMs);
    return `${this.cookieName}=${token}; Path=/; Max-Age=${Math.floor(this.sessionTtlMs / 1000)}; HttpOnly; SameSite=Strict`;
  }

  /** ends the request's session: the Set-Cookie header value that clears the cookie */
  endSession(req: IncomingMessage): string {
    const token = parseCookies(req.headers.cookie)[this.cookieName];
    if (token !== undefined) this.sessions.delete(token);
    return `${this.cookieName}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict`;
  }
}

/**
 * One limit on password guesses for the whole server, across connections and both ways in (form and bearer):
 * checks run one at a time, and wrong ones spend tokens from a bucket that holds `burst` and refills one every
 * `refillMs`. With the bucket empty the next check waits; with more than `maxWaiting` checks waiting, a guess is
 * refused at once, unchecked ('busy'). A right password spends nothing, so it gets in as soon as its turn comes.
 */
export class GuessLimiter {
  private tokens: number;
  private refilledAt = Date.now();
  private queue: Promise<unknown> = Promise.resolve();
  private waiting = 0;

  constructor(readonly options: { burst: number; refillMs: number; maxWaiting: number } = { burst: 5, refillMs: 2000, maxWaiting: 16 }) {
    this.tokens = options.burst;
  }

  attempt(check: () => boolean): Promise<Verdict> {
    if (this.waiting >= this.options.maxWaiting) return Promise.resolve('busy');
    this.waiting++;
    const turn = this.queue.then(async (): Promise<Verdict> => {
      this.refill();
      if (this.tokens < 1) {
        await new Promise((resolve) => setTimeout(resolve, (1 - this.tokens) * this.options.refillMs));
        this.refill();
      }
      if (check()) return 'ok';
      this.tokens -= 1;
      return 'denied';
    });
    this.queue = turn.then(
      () => this.waiting--,
      () => this.waiting--,
    );
    return turn;
  }

  private refill(): void {
    const now = Date.now();
    this.tokens = Math.min(this.options.burst, this.tokens + (now - this.refilledAt) / this.options.refillMs);
    this.refilledAt = now;
  }
}

/**
 * The names this server answers to, against DNS rebinding: a page on evil.example whose name is re-pointed at
 * this server sends `Host: evil.example`, so only known names are served. Known: any IP address literal (rebinding
 * needs a DNS name, so this covers the container's own addresses and the Docker host's), localhost, this host's
 * name, the listen address, and the --web-host names (for a reverse proxy that passes its own name on).
 */
export class HostCheck {
  private readonly names: Set<string>;

  constructor(listen: string, extraNames: readonly string[] = []) {
    this.names = new Set(['localhost', osHostname(), unbracket(listen), ...extraNames].map((n) => n.toLowerCase()));
  }

  /** the Host header's name when it is known, or why not */
  check(req: IncomingMessage): { ok: true } | { ok: false; name: string } {
    const name = hostName(req.headers.host);
    if (name !== undefined && this.knows(name)) return { ok: true };
    return { ok: false, name: req.headers.host ?? '' };
  }

  knows(name: string): boolean {
    const bare = unbracket(name).toLowerCase();
    return isIP(bare) !== 0 || this.names.has(bare);
  }

  /** a --web-host name (where a reverse proxy's pages come from), for the Origin check */
  isExtraName(name: string): boolean {
    return this.names.has(unbracket(name).toLowerCase());
  }
}

/**
 * A browser always sends Origin on websockets and POSTs. Another site's page must not drive the VM through the
 * user's browser (cross-site websocket hijacking, CSRF), so when Origin is present its host must be ours: the Host
 * header's, or one of the --web-host names (a reverse proxy may rewrite Host).
 * Clients that send no Origin (curl, scripts) are not browsers and need the password like anyone else.
 */
export function originAllowed(req: IncomingMessage, webHosts: readonly string[] = []): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  try {
    const url = new URL(origin);
    return url.host === req.headers.host || webHosts.some((h) => h.toLowerCase() === unbracket(url.hostname));
  } catch {
    return false;
  }
}

/** the name part of a Host header (without the port), or undefined when it is malformed */
export function hostName(header: string | undefined): string | undefined {
  // exactly name[:port] or [v6][:port]: no user info, path or other tricks
  return /^(\[[0-9A-Fa-f:.]+\]|[^\s:[\]/@?#\\]+)(:\d{1,5})?$/.exec(header ?? '')?.[1];
}

export function parseCookies(header: string | undefined): Record<string, string> {
  const cookies: Record<string, string> = {};
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0) cookies[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
  }
  return cookies;
}

function unbracket(name: string): string {
  return name.replace(/^\[(.*)\]$/, '$1');
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
