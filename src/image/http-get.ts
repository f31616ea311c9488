import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';

export interface HttpOptions {
  /** give up when the TCP (and TLS) connection is not up within this time */
  connectTimeoutMs: number;
  /** give up when no byte arrives for this long: while waiting for the headers, and between body chunks */
  stallTimeoutMs: number;
  /** redirects followed before giving up */
  maxRedirects: number;
}

export const DEFAULT_HTTP_OPTIONS: HttpOptions = { connectTimeoutMs: 30_000, stallTimeoutMs: 60_000, maxRedirects: 10 };

/**
 * A failure to talk to the server at all (refused, DNS, TLS, timeout, a cut connection), as opposed to an HTTP
 * status the server sent on purpose. A download retries these, and a cached copy is used when they happen.
 */
export class NetworkError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NetworkError';
  }
}

/** An HTTP status that ends the download: 4xx, 5xx, a redirect loop. */
export class HttpStatusError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = 'HttpStatusError';
  }
}

export interface HttpResponse {
  response: IncomingMessage;
  /** where the response came from, after redirects */
  url: string;
}

/**
 * GET with redirects, a connect timeout and a stall timeout. TLS certificates are always verified
 * (rejectUnauthorized is passed explicitly, so NODE_TLS_REJECT_UNAUTHORIZED=0 cannot turn it off). An https URL
 * that redirects to http is refused. The caller reads (or destroys) the response body; the stall timeout stays
 * armed while it reads. `signal` aborts the request and the body.
 */
export async function httpGet(url: string, headers: Record<string, string>, options: HttpOptions, signal?: AbortSignal): Promise<HttpResponse> {
  let current = url;
  for (let hop = 0; ; hop++) {
    const response = await requestOnce(current, headers, options, signal);
    const status = response.statusCode ?? 0;
    if (status >= 300 && status < 400 && status !== 304 && response.headers.location) {
      response.resume();
      if (hop >= options.maxRedirects) throw new HttpStatusError(`${url} redirected more than ${options.maxRedirects} times (last to ${current})`, status);
      const next = new URL(response.headers.location, current);
      if (new URL(current).protocol === 'https:' && next.protocol === 'http:') {
        throw new HttpStatusError(`${url} redirects from https to plain http (${next.href}); snabbvm does not downgrade: give the http URL itself if you trust it`, status);
      }
      if (next.protocol !== 'http:' && next.protocol !== 'https:') {
        throw new HttpStatusError(`${url} redirects to ${next.href}, which is not http(s)`, status);
      }
      current = next.href;
      continue;
    }
    return { response, url: current };
  }
}

function requestOnce(url: string, headers: Record<string, string>, options: HttpOptions, signal: AbortSignal | undefined): Promise<IncomingMessage> {
  const target = new URL(url);
  const client = target.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const request = client.get(target, {
      headers: { 'user-agent': 'snabbvm', 'accept-encoding': 'identity', ...headers },
      rejectUnauthorized: true,
      timeout: options.stallTimeoutMs,
      ...(signal ? { signal } : {}),
    });
    const connectTimer = setTimeout(() => {
      request.destroy(new NetworkError(`cannot connect to ${target.host} within ${options.connectTimeoutMs / 1000} s (${url})`));
    }, options.connectTimeoutMs);
    request.on('socket', (socket) => {
      // a reused keep-alive socket is already connected
      if (!socket.connecting) clearTimeout(connectTimer);
      socket.once(target.protocol === 'https:' ? 'secureConnect' : 'connect', () => clearTimeout(connectTimer));
    });
    let response: IncomingMessage | undefined;
    request.on('timeout', () => {
      const err = new NetworkError(`no data from ${target.host} for ${options.stallTimeoutMs / 1000} s (${url})`);
      response?.destroy(err); // the reader of the body sees why it ended
      request.destroy(err);
    });
    request.on('error', (err) => {
      clearTimeout(connectTimer);
      reject(err instanceof NetworkError ? err : new NetworkError(`${url}: ${describeSocketError(err)}`, { cause: err }));
    });
    request.on('response', (res) => {
      clearTimeout(connectTimer);
      response = res;
      resolve(res);
    });
  });
}

/** A short reason for a socket-level error, with the TLS case spelled out. */
export function describeSocketError(err: NodeJS.ErrnoException): string {
  const code = err.code ?? '';
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code)) {
    return `TLS certificate not trusted (${code}); snabbvm always verifies certificates: add your CA with NODE_EXTRA_CA_CERTS=FILE`;
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `host not found (${code})`;
  if (code === 'ECONNREFUSED') return 'connection refused';
  if (code === 'ECONNRESET') return 'connection reset by the server';
  return err.message;
}
