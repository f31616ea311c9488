import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export const SESSION_COOKIE = 'snabbvm_web';

/**
 * Who may use the web console. Without a password, anyone who reaches the port (as with VNC). With one, a browser
 * logs in once with it and gets a session cookie holding a random token that lives as long as the launcher;
 * scripts can send the password as `Authorization: Bearer PASSWORD`.
 */
export class WebAuth {
  /** the session token a successful login hands out */
  readonly token = randomBytes(32).toString('base64url');

  constructor(private readonly password: string | undefined) {}

  get required(): boolean {
    return this.password !== undefined;
  }

  passwordMatches(given: string): boolean {
    if (this.password === undefined) return true;
    // compare digests, so the time taken says nothing about the password's length or prefix
    return timingSafeEqual(sha256(given), sha256(this.password));
  }

  isAuthorized(req: IncomingMessage): boolean {
    if (this.password === undefined) return true;
    const cookie = parseCookies(req.headers.cookie)[SESSION_COOKIE];
    if (cookie !== undefined && timingSafeEqual(sha256(cookie), sha256(this.token))) return true;
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    return bearer !== undefined && this.passwordMatches(bearer);
  }

  sessionCookie(): string {
    return `${SESSION_COOKIE}=${this.token}; Path=/; HttpOnly; SameSite=Strict`;
  }
}

/**
 * A browser always sends Origin on websockets and POSTs. Another site's page must not drive the VM through the
 * user's browser (cross-site websocket hijacking, CSRF), so when Origin is present its host must be ours.
 * Clients that send no Origin (curl, scripts) are not browsers and need the password like anyone else.
 */
export function originAllowed(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

export function parseCookies(header: string | undefined): Record<string, string> {
  const cookies: Record<string, string> = {};
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0) cookies[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
  }
  return cookies;
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
