import { createReadStream, statSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import type { SerialHub } from '../console/serial-hub.js';
import type { VmStatus } from '../console/vm-status.js';
import { hostError } from '../errors.js';
import { bracketIpv6 } from '../network/bracket-ipv6.js';
import type { QmpClient } from '../qemu/qmp-client.js';
import { resolveAsset } from './web-assets.js';
import { GuessLimiter, HostCheck, originAllowed, sessionCookieName, WebAuth, type Verdict } from './web-auth.js';
import { loginPage } from './login-page.js';

/** What the web console drives, available once QEMU runs. */
export interface WebConsoleServices {
  hub: SerialHub;
  status(): Promise<VmStatus>;
  qmp: QmpClient;
  /** the unix socket of QEMU's VNC display for the web console, or undefined with --vnc none */
  vncSocket: string | undefined;
}

export interface WebConsole {
  /** the address actually bound, e.g. http://0.0.0.0:8006/ */
  readonly url: string;
  /** hands the console what it drives; until then the page loads but its live parts answer 503 */
  serve(services: WebConsoleServices): void;
  stop(): Promise<void>;
}

/** A slow consumer loses serial output rather than holding up the guest (as the hub does for its own clients). */
const MAX_BUFFERED = 1024 * 1024;
/** The VNC relay stops reading from one side while this much waits to be written to the other. */
export const VNC_HIGH_WATER = 1024 * 1024;

const POWER_ACTIONS: Record<string, (qmp: QmpClient) => Promise<unknown>> = {
  shutdown: (qmp) => qmp.execute('system_powerdown'),
  reset: (qmp) => qmp.execute('system_reset'),
  'ctrl-alt-del': (qmp) =>
    qmp.execute('send-key', { keys: ['ctrl', 'alt', 'delete'].map((data) => ({ type: 'qcode', data })) }),
};

export interface WebConsoleOptions {
  listen: string;
  port: number;
  password?: string | undefined;
  /** the VM's name, for the session cookie's name */
  name?: string;
  /** more names the server answers to (--web-host), such as a reverse proxy's */
  hosts?: readonly string[];
  /** tests: a tighter or looser limit on password guesses */
  guessLimit?: GuessLimiter['options'];
  /** tests: where a URL path's file is */
  resolveAsset?: typeof resolveAsset;
}

/**
 * The web console: one page (web/index.html) with the VM's screen (noVNC on a VNC display of QEMU's on a unix
 * socket, relayed so the password and Origin checks apply to it), the serial console (xterm.js on the serial hub),
 * live status and power buttons. Binds its port at once, before QEMU starts, so a port in use fails the run early.
 */
export async function listenWebConsole(options: WebConsoleOptions): Promise<WebConsole> {
  const hosts = options.hosts ?? [];
  const hostCheck = new HostCheck(options.listen, hosts);
  const limiter = options.guessLimit ? new GuessLimiter(options.guessLimit) : undefined;
  // made once the port is bound: the cookie's name holds it (port 0 asks for any)
  let auth!: WebAuth;
  const findAsset = options.resolveAsset ?? resolveAsset;
  const sameOrigin = (req: IncomingMessage) => originAllowed(req, hosts);
  let services: WebConsoleServices | undefined;
  const sockets = new WebSocketServer({ noServer: true });

  const server = http.createServer((req, res) => {
    setSecurityHeaders(res);
    handleRequest(req, res).catch((err: Error) => {
      if (!res.headersSent) send(res, 500, 'text/plain', `${err.message}\n`);
      else res.destroy();
    });
  });

  async function handleRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const host = hostCheck.check(req);
    if (!host.ok) return send(res, 421, 'text/plain', `${unknownHostMessage(host.name)}\n`);
    if (url.pathname === '/login') return login(req, res);
    if (url.pathname === '/logout') return logout(req, res);
    const verdict = await auth.authorize(req);
    if (verdict === 'busy') return tooManyGuesses(res);
    if (verdict === 'denied') {
      if (req.method === 'GET' && url.pathname === '/') return send(res, 401, 'text/html', loginPage(false));
      return send(res, 401, 'text/plain', 'log in first: this web console needs its password (--web-password)\n');
    }
    if (url.pathname === '/api/status' && req.method === 'GET') {
      if (!services) return send(res, 503, 'text/plain', 'the VM is starting\n');
      const status = { ...(await services.status()), screen: services.vncSocket !== undefined, login: auth.required };
      return send(res, 200, 'application/json', JSON.stringify(status));
    }
    const power = /^\/api\/power\/([a-z-]+)$/.exec(url.pathname)?.[1];
    if (power !== undefined) {
      if (req.method !== 'POST') return send(res, 405, 'text/plain', 'use POST\n');
      if (!sameOrigin(req)) return send(res, 403, 'text/plain', 'cross-origin request refused\n');
      const action = Object.hasOwn(POWER_ACTIONS, power) ? POWER_ACTIONS[power] : undefined;
      if (!action) return send(res, 404, 'text/plain', `no such action: ${power}\n`);
      if (!services) return send(res, 503, 'text/plain', 'the VM is starting\n');
      await action(services.qmp);
      return send(res, 200, 'application/json', JSON.stringify({ done: power }));
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'text/plain', 'method not allowed\n');
    const file = findAsset(url.pathname);
    if (file === undefined) return send(res, 404, 'text/plain', 'not found\n');
    let size: number;
    try {
      size = statSync(file.path).size;
    } catch {
      return send(res, 404, 'text/plain', 'not found\n');
    }
    res.writeHead(200, { 'content-type': file.type, 'content-length': size, 'cache-control': 'no-cache' });
    if (req.method === 'HEAD') return void res.end();
    // a read error (the file gone or unreadable since the stat) ends this response, not the launcher
    createReadStream(file.path)
      .on('error', () => res.destroy())
      .pipe(res);
  }

  async function login(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!auth.required) {
      res.writeHead(303, { location: '/' });
      return void res.end();
    }
    if (req.method !== 'POST') return send(res, 200, 'text/html', loginPage(false));
    if (!sameOrigin(req)) return send(res, 403, 'text/plain', 'cross-origin request refused\n');
    const form = new URLSearchParams(await readBody(req, 4096));
    const verdict = await auth.checkPassword(form.get('password') ?? '');
    if (verdict === 'busy') return tooManyGuesses(res);
    if (verdict === 'denied') return send(res, 401, 'text/html', loginPage(true));
    res.writeHead(303, { location: '/', 'set-cookie': auth.newSession() });
    res.end();
  }

  /** POST /logout: the session ends here and in the browser */
  function logout(req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== 'POST') return send(res, 405, 'text/plain', 'use POST\n');
    if (!sameOrigin(req)) return send(res, 403, 'text/plain', 'cross-origin request refused\n');
    res.writeHead(303, { location: '/', 'set-cookie': auth.endSession(req) });
    res.end();
  }

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy()); // a client gone mid-handshake must not crash the launcher
    upgrade(req, socket, head).catch(() => socket.destroy());
  });

  async function upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const refuse = (status: string, body = '') => {
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    };
    const host = hostCheck.check(req);
    if (!host.ok) return refuse('421 Misdirected Request', `${unknownHostMessage(host.name)}\n`);
    if (path !== '/ws/serial' && path !== '/ws/vnc') return refuse('404 Not Found');
    if (!sameOrigin(req)) return refuse('403 Forbidden');
    const verdict: Verdict = await auth.authorize(req);
    if (verdict === 'busy') return refuse('429 Too Many Requests');
    if (verdict === 'denied') return refuse('401 Unauthorized');
    const ready = services;
    if (!ready || (path === '/ws/vnc' && ready.vncSocket === undefined)) return refuse('503 Service Unavailable');
    sockets.handleUpgrade(req, socket, head, (client) => {
      if (path === '/ws/serial') serveSerial(client, ready.hub);
      else relayVnc(client, ready.vncSocket!);
    });
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') reject(hostError(`port ${options.port} on ${options.listen} is in use, so the web console cannot start; choose another port with --web PORT, or --web none`));
      else if (err.code === 'EADDRNOTAVAIL') reject(hostError(`--web-listen ${options.listen} is not an address of this host; give one of its addresses, or 0.0.0.0`));
      else reject(hostError(`the web console cannot listen on ${options.listen}:${options.port}: ${err.message}`));
    });
    server.listen(options.port, options.listen.replace(/^\[(.*)\]$/, '$1'), () => resolve()); // [::1] as VNC takes it
  });
  const port = (server.address() as { port: number }).port; // the one bound, when port 0 asked for any
  auth = new WebAuth(options.password, sessionCookieName(options.name ?? 'snabbvm', port), limiter ? { limiter } : {});

  return {
    url: `http://${bracketIpv6(options.listen)}:${port}/`,
    serve(s) {
      services = s;
    },
    async stop() {
      for (const client of sockets.clients) client.terminate();
      sockets.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The serial console over a websocket: the last screenful first, then everything live; keystrokes go to the guest. */
function serveSerial(client: WebSocket, hub: SerialHub): void {
  // xterm.js answers the guest's terminal queries like any terminal: the hub keeps one answer per query
  const terminal = hub.attach((chunk) => {
    if (client.bufferedAmount < MAX_BUFFERED) client.send(chunk);
  });
  client.on('message', (data: Buffer) => terminal.write(data));
  client.on('close', () => terminal.detach());
  client.on('error', () => client.terminate());
  void hub.closed.then(() => client.close());
}

/**
 * noVNC's websocket ↔ QEMU's VNC on a unix socket (RFB bytes both ways). A unix socket, not QEMU's websocket on
 * loopback: in --net user the guest reaches the host's loopback through 10.0.2.2, and would skip the password.
 * Each side stops being read while the other has VNC_HIGH_WATER bytes waiting, so a slow browser or a slow QEMU
 * holds up its peer instead of growing the launcher's memory.
 */
function relayVnc(client: WebSocket, vncSocket: string): void {
  const upstream = net.connect(vncSocket);
  // websocket -> QEMU: net.Socket buffers until connected; pause the client while that buffer is full
  client.on('message', (data: Buffer) => {
    if (!upstream.write(data)) client.pause();
  });
  upstream.on('drain', () => client.resume());
  // QEMU -> websocket: pause the socket while the websocket has too much unsent, until a send completes
  upstream.on('data', (data: Buffer) => {
    client.send(data, () => {
      if (upstream.isPaused() && client.bufferedAmount < VNC_HIGH_WATER) upstream.resume();
    });
    if (client.bufferedAmount >= VNC_HIGH_WATER) upstream.pause();
  });
  const closeBoth = () => {
    client.close();
    upstream.destroy();
  };
  client.on('close', closeBoth);
  upstream.on('close', closeBoth);
  client.on('error', () => client.terminate());
  upstream.on('error', () => client.close(1011, 'QEMU VNC is not reachable'));
}

function unknownHostMessage(host: string): string {
  return `this web console does not answer to the name '${host}' (a guard against DNS rebinding); use its address or localhost, or start it with --web-host NAME (SNABBVM_WEB_HOST) for a name of yours, such as a reverse proxy's`;
}

function tooManyGuesses(res: ServerResponse): void {
  res.setHeader('retry-after', '5');
  send(res, 429, 'text/plain', 'too many password attempts at once; try again in a few seconds\n');
}

function setSecurityHeaders(res: ServerResponse): void {
  res.setHeader('x-content-type-options', 'nosniff');
  res.setHeader('x-frame-options', 'DENY');
  // not no-referrer: with it, browsers send "Origin: null" on form posts, which the Origin check refuses
  res.setHeader('referrer-policy', 'same-origin');
  // everything is served from here (no CDN: the host may have no Internet); xterm.js sets inline styles
  res.setHeader('content-security-policy', "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'");
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': `${type}; charset=utf-8`, 'cache-control': 'no-store' });
  res.end(body);
}

async function readBody(req: IncomingMessage, limit: number): Promise<string> {
  let body = '';
  for await (const chunk of req) {
    body += String(chunk);
    if (body.length > limit) throw new Error('request body too large');
  }
  return body;
}
