import net from 'node:net';
import type { ControlRequest, ControlResponse } from './control-server.js';

/** The launcher isn't there: no control socket, or nobody answering on it. */
export class NoLauncherError extends Error {
  constructor(readonly socketPath: string, cause: unknown) {
    super(`nothing answers on ${socketPath}`, { cause });
    this.name = 'NoLauncherError';
  }
}

/** A connection to the launcher's control socket; requests are answered in order. */
export class ControlClient {
  private buffer = '';
  private readonly pending: { resolve: (r: unknown) => void; reject: (e: Error) => void }[] = [];
  /** resolves when the launcher closes the connection (it has stopped) */
  readonly closed: Promise<void>;

  private constructor(private readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      let nl: number;
      while ((nl = this.buffer.indexOf('\n')) >= 0) {
        const response = JSON.parse(this.buffer.slice(0, nl)) as ControlResponse;
        this.buffer = this.buffer.slice(nl + 1);
        const p = this.pending.shift();
        if (!p) continue;
        if (response.ok) p.resolve(response.result);
        else p.reject(new Error(response.error));
      }
    });
    socket.on('error', () => {});
    this.closed = new Promise((resolve) =>
      socket.on('close', () => {
        for (const p of this.pending.splice(0)) p.reject(new Error('the launcher closed the control connection'));
        resolve();
      }),
    );
  }

  static connect(socketPath: string): Promise<ControlClient> {
    return new Promise((resolve, reject) => {
      const socket = net.createConnection(socketPath);
      socket.once('connect', () => {
        socket.removeAllListeners('error');
        resolve(new ControlClient(socket));
      });
      socket.once('error', (err) => reject(new NoLauncherError(socketPath, err)));
    });
  }

  request<T = unknown>(request: ControlRequest): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ resolve: resolve as (r: unknown) => void, reject });
      this.socket.write(JSON.stringify(request) + '\n');
    });
  }

  close(): void {
    this.socket.end();
  }
}

/** One request on a fresh connection. */
export async function controlRequest<T = unknown>(socketPath: string, request: ControlRequest): Promise<T> {
  const client = await ControlClient.connect(socketPath);
  try {
    return await client.request<T>(request);
  } finally {
    client.close();
  }
}
