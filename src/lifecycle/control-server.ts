import { chmodSync, rmSync } from 'node:fs';
import net from 'node:net';

/** A request on the control socket: one JSON object per line, `cmd` names the handler. */
export interface ControlRequest {
  cmd: string;
  [arg: string]: unknown;
}
/** The answer, one JSON object per line, in the order of the requests. */
export type ControlResponse = { ok: true; result: unknown } | { ok: false; error: string };

export type ControlHandlers = Record<string, (request: ControlRequest) => Promise<unknown> | unknown>;

export interface ControlServer {
  readonly socketPath: string;
  stop(): Promise<void>;
}

/**
 * The launcher's control socket, so that `snabbvm status`, `monitor` and `stop` (and the web console) share the
 * launcher's one QMP connection instead of fighting over QEMU's single-client sockets.
 * Only root (the socket's owner) can connect: the run folder is 0700 and the socket 0600.
 */
export async function startControlServer(socketPath: string, handlers: ControlHandlers): Promise<ControlServer> {
  /** each connection, with the promise of its last answer */
  const connections = new Map<net.Socket, Promise<void>>();
  const server = net.createServer((conn) => {
    connections.set(conn, Promise.resolve());
    conn.on('close', () => connections.delete(conn));
    conn.on('error', () => {});
    let buffer = '';
    conn.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('utf8');
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl).trim();
        buffer = buffer.slice(nl + 1);
        if (!line) continue;
        const response = handle(line, handlers);
        // answers go out in request order, even when a later handler finishes first
        connections.set(
          conn,
          connections.get(conn)!.then(async () => {
            const r = await response;
            if (!conn.destroyed) conn.write(JSON.stringify(r) + '\n');
          }),
        );
      }
    });
  });
  rmSync(socketPath, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  chmodSync(socketPath, 0o600);

  let stopping: Promise<void> | undefined;
  return {
    socketPath,
    /** answers what is already being answered (a `stop` waits for the VM's end), for at most a second */
    stop() {
      stopping ??= (async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        await Promise.all(
          [...connections].map(([conn, lastAnswer]) =>
            Promise.race([lastAnswer, new Promise((resolve) => setTimeout(resolve, 1000))]).then(() => conn.end()),
          ),
        );
        setTimeout(() => {
          for (const conn of connections.keys()) conn.destroy();
        }, 500).unref();
        await closed;
        rmSync(socketPath, { force: true });
      })();
      return stopping;
    },
  };
}

async function handle(line: string, handlers: ControlHandlers): Promise<ControlResponse> {
  let request: ControlRequest;
  try {
    request = JSON.parse(line) as ControlRequest;
  } catch {
    return { ok: false, error: 'the request is not JSON' };
  }
  const handler = typeof request?.cmd === 'string' ? handlers[request.cmd] : undefined;
  if (!handler) return { ok: false, error: `unknown command '${String(request?.cmd)}'; known: ${Object.keys(handlers).join(', ')}` };
  try {
    return { ok: true, result: (await handler(request)) ?? null };
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  }
}
