import { createReadStream, statSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import type { SerialHub } from '../console/serial-hub.js';
import type { VmStatus } from '../console/vm-status.js';
import { hostError } from '../errors.js';
import { bracketIpv6 } from '../network/bracket-ipv6.js';
import type { QmpClient } from '../qemu/qmp-client.js';
import { resolveAsset } from './web-assets.js';
import { originAllowed, WebAuth } from './web-auth.js';
import { loginPage } from './login-page.js';

/** What the web console drives, available once QEMU runs. */
export interface WebConsoleServices {
  hub: SerialHub;
  status(): Promise<VmStatus>;
  qmp: QmpClient;
  /** QEMU's own websocket VNC (host:port on loopback), or undefined with --vnc none */
  vncWebsocket: string | undefined;
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

const POWER_ACTIONS: Record<string, (qmp: QmpClient) => Promise<unknown>> = {
  shutdown: (qmp) => qmp.execute('system_powerdown'),
  reset: (qmp) => qmp.execute('system_reset'),
  'ctrl-alt-del': (qmp) =>
    qmp.execute('send-key', { keys: ['ctrl', 'alt', 'delete'].map((data) => ({ type: 'qcode', data })) }),
};

/**
 * The web console: one page (web/index.html) with the VM's screen (noVNC on QEMU's websocket VNC, relayed so the
 * password and Origin checks apply to it), the serial console (xterm.js on the serial hub), live status and
 * power buttons. Binds its port at once, before QEMU starts, so a port in use fails the run early.
 */
export async function listenWebConsole(options: { listen: string; port: number; password?: string | undefined }): Promise<WebConsole> {
  const auth = new WebAuth(options.password);
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
    if (url.pathname === '/login') return login(req, res);
    if (!auth.isAuthorized(req)) {
      if (req.method === 'GET' && url.pathname === '/') return send(res, 401, 'text/html', loginPage(false));
      return send(res, 401, 'text/plain', 'log in first: this web console needs its password (--web-password)\n');
    }
    if (url.pathname === '/api/status' && req.method === 'GET') {
      if (!services) return send(res, 503, 'text/plain', 'the VM is starting\n');
      const status = { ...(await services.status()), screen: services.vncWebsocket !== undefined };
      return send(res, 200, 'application/json', JSON.stringify(status));
    }
    const power = /^\/api\/power\/([a-z-]+)$/.exec(url.pathname)?.[1];
    if (power !== undefined) {
      if (req.method !== 'POST') return send(res, 405, 'text/plain', 'use POST\n');
      if (!originAllowed(req)) return send(res, 403, 'text/plain', 'cross-origin request refused\n');
      const action = Object.hasOwn(POWER_ACTIONS, power) ? POWER_ACTIONS[power] : undefined;
      if (!action) return send(res, 404, 'text/plain', `no such action: ${power}\n`);
      if (!services) return send(res, 503, 'text/plain', 'the VM is starting\n');
      await action(services.qmp);
      return send(res, 200, 'application/json', JSON.stringify({ done: power }));
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'text/plain', 'method not allowed\n');
    const file = resolveAsset(url.pathname);
    if (file === undefined) return send(res, 404, 'text/plain', 'not found\n');
    let size: number;
    try {
      size = statSync(file.path).size;
    } catch {
      return send(res, 404, 'text/plain', 'not found\n');
    }
    res.writeHead(200, { 'content-type': file.type, 'content-length': size, 'cache-control': 'no-cache' });
    if (req.method === 'HEAD') return void res.end();
    createReadStream(file.path).pipe(res);
  }

  async function login(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!auth.required) {
      res.writeHead(303, { location: '/' });
      return void res.end();
    }
    if (req.method !== 'POST') return send(res, 200, 'text/html', loginPage(false));
    if (!originAllowed(req)) return send(res, 403, 'text/plain', 'cross-origin request refused\n');
    const form = new URLSearchParams(await readBody(req, 4096));
    if (!auth.passwordMatches(form.get('password') ?? '')) {
      await new Promise((resolve) => setTimeout(resolve, 500)); // slows guessing down
      return send(res, 401, 'text/html', loginPage(true));
    }
    res.writeHead(303, { location: '/', 'set-cookie': auth.sessionCookie() });
    res.end();
  }

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy()); // a client gone mid-handshake must not crash the launcher
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const refuse = (status: string) => {
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    };
    if (path !== '/ws/serial' && path !== '/ws/vnc') return refuse('404 Not Found');
    if (!originAllowed(req)) return refuse('403 Forbidden');
    if (!auth.isAuthorized(req)) return refuse('401 Unauthorized');
    const ready = services;
    if (!ready || (path === '/ws/vnc' && ready.vncWebsocket === undefined)) return refuse('503 Service Unavailable');
    sockets.handleUpgrade(req, socket, head, (client) => {
      if (path === '/ws/serial') serveSerial(client, ready.hub);
      else relayVnc(client, ready.vncWebsocket!);
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') reject(hostError(`port ${options.port} on ${options.listen} is in use, so the web console cannot start; choose another port with --web PORT, or --web none`));
      else if (err.code === 'EADDRNOTAVAIL') reject(hostError(`--web-listen ${options.listen} is not an address of this host; give one of its addresses, or 0.0.0.0`));
      else reject(hostError(`the web console cannot listen on ${options.listen}:${options.port}: ${err.message}`));
    });
    server.listen(options.port, options.listen.replace(/^\[(.*)\]$/, '$1'), () => resolve()); // [::1] as VNC takes it
  });
  const port = (server.address() as { port: number }).port; // the one bound, when port 0 asked for any

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

/** noVNC ↔ QEMU's websocket VNC, frame for frame. QEMU listens on loopback only; this relay is the way in. */
function relayVnc(client: WebSocket, qemuWebsocket: string): void {
  const upstream = new WebSocket(`ws://${qemuWebsocket}/`, 'binary');
  const early: Buffer[] = [];
  client.on('message', (data: Buffer) => {
    if (upstream.readyState === WebSocket.OPEN) upstream.send(data);
    else early.push(data);
  });
  upstream.on('open', () => {
    for (const data of early.splice(0)) upstream.send(data);
  });
  upstream.on('message', (data: Buffer) => client.send(data));
  const closeBoth = () => {
    client.close();
    upstream.close();
  };
  client.on('close', closeBoth);
  upstream.on('close', closeBoth);
  client.on('error', () => client.terminate());
  upstream.on('error', () => client.close(1011, 'QEMU VNC is not reachable'));
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
