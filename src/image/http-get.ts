import net from 'node:net';
import tls from 'node:tls';
import { bodyFraming, ChunkedDecoder, parseResponseHead, type BodyFraming, type ResponseHead } from './http-framing.js';

export interface HttpOptions {
  /** give up when the TCP (and TLS) connection is not up within this time */
  connectTimeoutMs: number;
  /** give up when no byte arrives for this long: while waiting for the headers, and between body chunks */
  stallTimeoutMs: number;
  /** redirects followed before giving up */
  maxRedirects: number;
  /** proxies from HTTP_PROXY, HTTPS_PROXY and NO_PROXY (see proxyFromEnv); none when absent */
  proxy?: ProxySettings;
}

/** Where downloads go through a proxy. */
export interface ProxySettings {
  /** http://[user:password@]host:port, for http URLs */
  http?: string;
  /** the same, for https URLs (through CONNECT) */
  https?: string;
  /** host names (and their subdomains), IP addresses, `host:port`, or `*`, reached directly */
  noProxy: string[];
}

/**
 * The proxies the environment names: http_proxy or HTTP_PROXY, https_proxy or HTTPS_PROXY, no_proxy or NO_PROXY
 * (lower case first, as curl; curl ignores HTTP_PROXY, which a CGI server sets from a request header, but the
 * launcher is no CGI program). A proxy without a scheme is http://. Throws a plain Error for a proxy URL that is
 * not http://host[:port].
 */
export function proxyFromEnv(env: NodeJS.ProcessEnv): ProxySettings | undefined {
  const read = (...names: string[]) => names.map((n) => [n, env[n]] as const).find(([, v]) => v !== undefined && v.trim() !== '');
  const parse = (entry: readonly [string, string | undefined] | undefined): string | undefined => {
    if (!entry) return undefined;
    const [name, value] = entry;
    const text = value!.trim();
    // its password hidden, with or without a scheme (hidePasswords knows http and https URLs only)
    const shown = text.replace(/^([a-z][a-z0-9+.-]*:\/\/)?([^\s/:@]*):[^\s/@]*@/i, '$1$2:***@');
    let url: URL;
    try {
      url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `http://${text}`);
    } catch {
      throw new Error(`${name}=${shown} is not a proxy URL; give http://[user:password@]host:port`);
    }
    if (url.protocol !== 'http:' || url.hostname === '' || (url.pathname !== '/' && url.pathname !== '')) {
      throw new Error(`${name}=${shown} is not a proxy URL snabbvm can use; give http://[user:password@]host:port (the connection to the proxy is plain http; https URLs go through it with CONNECT)`);
    }
    return url.href;
  };
  const http = parse(read('http_proxy', 'HTTP_PROXY'));
  const https = parse(read('https_proxy', 'HTTPS_PROXY'));
  if (!http && !https) return undefined;
  const noProxy = (read('no_proxy', 'NO_PROXY')?.[1] ?? '')
    .split(/[\s,]+/)
    .map((e) => e.trim().toLowerCase())
    .filter((e) => e !== '');
  return { ...(http ? { http } : {}), ...(https ? { https } : {}), noProxy };
}

/** The proxy a URL goes through, or undefined for a direct connection. Pure. */
export function proxyForUrl(target: URL, settings: ProxySettings | undefined): URL | undefined {
  if (!settings) return undefined;
  const proxy = target.protocol === 'https:' ? settings.https : settings.http;
  if (!proxy) return undefined;
  const host = target.hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  const port = target.port || (target.protocol === 'https:' ? '443' : '80');
  for (const entry of settings.noProxy) {
    if (entry === '*') return undefined;
    const m = /^(\[[^\]]*\]|[^:]*)(?::(\d+))?$/.exec(entry);
    if (!m) continue;
    const name = m[1]!.replace(/^\[(.*)\]$/, '$1').replace(/^\*?\./, '');
    if (m[2] !== undefined && m[2] !== port) continue;
    if (host === name || host.endsWith(`.${name}`)) return undefined;
  }
  return new URL(proxy);
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

export interface HttpResponse extends ResponseHead {
  /** where the response came from, after redirects */
  url: string;
  /** how the body ends: its Content-Length when it has one (checked to be digits only, and alone) */
  framing: BodyFraming;
  /**
   * Hands the body to onData in order, and resolves at its end. A chunk is valid only during the call: its memory
   * is reused for the next read, so keep a copy if you need it later. When onData returns a promise, no more data
   * comes until it settles. Rejects with a NetworkError when the connection breaks, stalls or ends early, with
   * onData's own error when it throws, and with the signal's reason on abort. The connection is closed after.
   */
  readBody(onData: (chunk: Buffer) => void | Promise<void>): Promise<void>;
  /** Closes the connection without reading the body. */
  close(): void;
}

/**
 * Each connection reads into one buffer this big, handed to the reader in place. Node's own http client gives
 * a new 64 KiB buffer per read through a stream, and that cost as much CPU as the SHA-256 did: a 1 GiB download
 * took about twice as long as `curl -o`.
 */
const READ_BUFFER_BYTES = 4 << 20;
/** a response head bigger than this is not one */
const MAX_HEAD_BYTES = 64 << 10;

/**
 * GET with redirects, a connect timeout and a stall timeout, over HTTP/1.1 with one connection per request. TLS
 * certificates are always verified (NODE_TLS_REJECT_UNAUTHORIZED=0 cannot turn that off). An https URL that
 * redirects to http is refused. The caller reads the body or closes the response; the stall timeout stays armed
 * while it reads. `signal` aborts the request and the body.
 */
export async function httpGet(url: string, headers: Record<string, string>, options: HttpOptions, signal?: AbortSignal): Promise<HttpResponse> {
  let current = url;
  for (let hop = 0; ; hop++) {
    const response = await requestOnce(current, headers, options, signal);
    const { status } = response;
    if (status >= 300 && status < 400 && status !== 304 && response.headers.location) {
      response.close();
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
    return response;
  }
}

/** Basic credentials from a URL's user and password. */
function basicAuth(url: URL): string {
  return `Basic ${Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString('base64')}`;
}

/**
 * A tunnel to host:port through an http proxy (CONNECT), for TLS on top. The proxy's credentials go as
 * Proxy-Authorization; messages name the proxy without them.
 */
function openTunnel(proxy: URL, host: string, port: number, url: string, options: HttpOptions, signal: AbortSignal | undefined): Promise<net.Socket> {
  const authority = `${net.isIPv6(host) ? `[${host}]` : host}:${port}`;
  const via = `the proxy ${proxy.host}`;
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: proxy.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(proxy.port) || 80 });
    let head = Buffer.alloc(0);
    let done = false;
    const settle = (err?: Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', abort);
      socket.removeAllListeners('data');
      socket.removeAllListeners('close');
      socket.removeAllListeners('error');
      if (err) {
        socket.destroy();
        reject(err);
      } else {
        resolve(socket);
      }
    };
    const timer = setTimeout(() => settle(new NetworkError(`cannot reach ${authority} through ${via} within ${options.connectTimeoutMs / 1000} s (${url})`)), options.connectTimeoutMs);
    const abort = () => settle(signal!.reason as Error);
    signal?.addEventListener('abort', abort, { once: true });
    socket.on('error', (err) => settle(new NetworkError(`${url}: ${via}: ${describeSocketError(err)}`, { cause: err })));
    socket.on('close', () => settle(new NetworkError(`${url}: ${via} closed the connection before the tunnel was up`)));
    socket.on('data', (bytes: Buffer) => {
      head = Buffer.concat([head, bytes]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > MAX_HEAD_BYTES) settle(new NetworkError(`${url}: ${via} does not answer in HTTP`));
        return;
      }
      let answer: ResponseHead;
      try {
        answer = parseResponseHead(head.subarray(0, end).toString('latin1'));
      } catch (err) {
        settle(new NetworkError(`${url}: ${via}: ${(err as Error).message}`));
        return;
      }
      if (answer.status !== 200) {
        const hint = answer.status === 407 || answer.status === 401 ? `; check the user and password in HTTPS_PROXY` : '';
        settle(new HttpStatusError(`${url}: ${via} refused the tunnel to ${authority}: HTTP ${answer.status} ${answer.statusText}`.trim() + hint, answer.status));
      } else if (head.length > end + 4) {
        settle(new NetworkError(`${url}: ${via} sent data before the tunnel was up`));
      } else {
        settle();
      }
    });
    const request = [`CONNECT ${authority} HTTP/1.1`, `Host: ${authority}`, 'User-Agent: snabbvm'];
    if (proxy.username || proxy.password) request.push(`Proxy-Authorization: ${basicAuth(proxy)}`);
    socket.write(`${request.join('\r\n')}\r\n\r\n`);
  });
}

async function requestOnce(url: string, headers: Record<string, string>, options: HttpOptions, signal: AbortSignal | undefined): Promise<HttpResponse> {
  signal?.throwIfAborted();
  const target = new URL(url);
  const secure = target.protocol === 'https:';
  const host = target.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = Number(target.port) || (secure ? 443 : 80);
  const proxy = proxyForUrl(target, options.proxy);
  // https through a proxy: TLS inside a CONNECT tunnel; http: the request goes to the proxy, with the whole URL
  const tunnel = proxy && secure ? await openTunnel(proxy, host, port, url, options, signal) : undefined;

  // Bytes go to `taker` while it reads; while it is waiting (or before the body is asked for) they are copied into
  // the backlog, in order. A paused TLS socket still hands over what it had already decrypted.
  let taker: ((bytes: Buffer) => boolean) | undefined;
  const backlog: Buffer[] = [];
  let ended = false;
  let failure: Error | undefined;
  /** told when the connection ends or fails */
  let wake = () => {};

  const onread = {
    buffer: Buffer.allocUnsafe(READ_BUFFER_BYTES),
    callback: (n: number, buffer: Uint8Array): boolean => {
      const bytes = (buffer as Buffer).subarray(0, n);
      if (taker) return taker(bytes);
      backlog.push(Buffer.from(bytes));
      return false;
    },
  };
  const socket = secure
    ? tls.connect({ host, ...(tunnel ? { socket: tunnel } : { port }), servername: net.isIP(host) ? undefined : host, rejectUnauthorized: true, ALPNProtocols: ['http/1.1'], onread } as unknown as tls.ConnectionOptions)
    : proxy
      ? net.connect({ host: proxy.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(proxy.port) || 80, onread })
      : net.connect({ host, port, onread });
  if (tunnel) {
    // TLS over an existing socket ignores onread and emits 'data' (Node 20): the same callback, by hand
    socket.on('data', (chunk: Buffer) => {
      if (!onread.callback(chunk.length, chunk)) socket.pause();
    });
  }
  const fail = (err: Error) => {
    failure ??= err;
    socket.destroy();
    wake();
  };
  const connectTimer = setTimeout(() => fail(new NetworkError(`cannot connect to ${target.host} within ${options.connectTimeoutMs / 1000} s (${url})`)), options.connectTimeoutMs);
  socket.once(secure ? 'secureConnect' : 'connect', () => clearTimeout(connectTimer));
  socket.setTimeout(options.stallTimeoutMs, () => fail(new NetworkError(`no data from ${target.host} for ${options.stallTimeoutMs / 1000} s (${url})`)));
  const through = proxy && !secure ? ` (through the proxy ${proxy.host})` : '';
  socket.on('error', (err) => fail(err instanceof NetworkError ? err : new NetworkError(`${url}${through}: ${describeSocketError(err)}`, { cause: err })));
  socket.on('end', () => {
    ended = true;
    wake();
  });
  socket.on('close', () => {
    clearTimeout(connectTimer);
    signal?.removeEventListener('abort', abort);
    fail(new NetworkError(`the connection was cut (${url})`));
  });
  const abort = () => fail(signal!.reason as Error);
  signal?.addEventListener('abort', abort, { once: true });

  // through an http proxy the request names the whole URL (without its credentials, which go as Authorization)
  const requestTarget = proxy && !secure ? `http://${target.host}${target.pathname}${target.search}` : `${target.pathname}${target.search}`;
  const request = [`GET ${requestTarget} HTTP/1.1`, `Host: ${target.host}`, 'User-Agent: snabbvm', 'Accept-Encoding: identity', 'Connection: close'];
  // http://user:password@host/...: Basic auth, as Node's http client and curl do
  if (target.username || target.password) request.push(`Authorization: ${basicAuth(target)}`);
  if (proxy && !secure && (proxy.username || proxy.password)) request.push(`Proxy-Authorization: ${basicAuth(proxy)}`);
  for (const [name, value] of Object.entries(headers)) request.push(`${name}: ${value}`);
  socket.write(`${request.join('\r\n')}\r\n\r\n`);

  return new Promise((resolve, reject) => {
    wake = () => reject(ended && !failure ? new NetworkError(`${url}: the server closed the connection without an answer`) : failure);
    let head = Buffer.alloc(0);
    taker = (bytes) => {
      head = Buffer.concat([head, bytes]); // a copy: the read buffer is reused
      for (;;) {
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) {
          if (head.length <= MAX_HEAD_BYTES) return true;
          fail(new NetworkError(`${url}: the server's answer is not HTTP`));
          return false;
        }
        let parsed: ResponseHead;
        let framing: BodyFraming;
        try {
          parsed = parseResponseHead(head.subarray(0, end).toString('latin1'));
          framing = bodyFraming(parsed);
        } catch (err) {
          fail(new NetworkError(`${url}: ${(err as Error).message}`));
          return false;
        }
        head = head.subarray(end + 4);
        if (parsed.status >= 100 && parsed.status < 200) continue; // 100 Continue, 103 Early Hints: the answer follows
        // the body waits for readBody
        taker = undefined;
        wake = () => {};
        if (head.length > 0) backlog.push(head);
        resolve({ ...parsed, url, framing, readBody: (onData) => readBody(framing, onData), close: () => socket.destroy() });
        return false;
      }
    };
  });

  function readBody(framing: BodyFraming, onData: (chunk: Buffer) => void | Promise<void>): Promise<void> {
    const decoder = framing.kind === 'chunked' ? new ChunkedDecoder() : undefined;
    let remaining = framing.kind === 'length' ? framing.length : Infinity; // Infinity: the body ends with the connection
    const done = () => (decoder ? decoder.done : remaining === 0);

    return new Promise((resolve, reject) => {
      let settled = false;
      const finish = (err?: Error) => {
        if (settled) return;
        settled = true;
        taker = undefined;
        socket.destroy();
        if (err) reject(err);
        else resolve();
      };

      /** Gives `bytes` to onData; false when the body is over or onData is busy (the rest then waits in the backlog). */
      const feed = (bytes: Buffer): boolean => {
        while (bytes.length > 0 && !done()) {
          let piece: Buffer;
          if (decoder) {
            try {
              ({ piece, rest: bytes } = decoder.take(bytes));
            } catch (err) {
              finish(new NetworkError(`${url}: ${(err as Error).message}`));
              return false;
            }
          } else {
            piece = bytes.length <= remaining ? bytes : bytes.subarray(0, remaining);
            remaining -= piece.length;
            bytes = bytes.subarray(piece.length);
          }
          if (piece.length === 0) continue;
          let busy: void | Promise<void>;
          try {
            busy = onData(piece);
          } catch (err) {
            finish(err as Error);
            return false;
          }
          if (busy) {
            taker = undefined;
            if (bytes.length > 0) backlog.unshift(Buffer.from(bytes));
            busy.then(pump, finish);
            return false;
          }
        }
        if (done()) finish();
        return !done();
      };

      /** Feeds the backlog, then reads on, or ends as the connection did. */
      function pump(): void {
        while (backlog.length > 0) if (!feed(backlog.shift()!)) return;
        if (settled) return;
        if (done()) finish();
        else if (ended) finish(remaining === Infinity && !decoder ? undefined : new NetworkError(`the connection was cut (${url})`));
        else if (failure) finish(failure);
        else {
          taker = feed;
          socket.resume();
        }
      }

      wake = () => {
        if (taker) pump(); // reading, not waiting for onData
      };
      pump();
    });
  }
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
