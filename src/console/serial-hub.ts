import { rmSync } from 'node:fs';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { ReplyArbiter, type TerminalInput } from './reply-arbiter.js';
import { stripQueries } from './terminal-queries.js';

/** How much recent output the hub keeps for clients that want to show some history (the web console). */
const RECENT_BYTES = 64 * 1024;
/** How much of it a new socket client sees first, so it doesn't start on a blank screen. */
const REPLAY_BYTES = 8 * 1024;

/**
 * QEMU's serial chardev serves one client at a time. The hub is that one client, and re-serves the console to any
 * number of clients: everything the guest writes goes to every client, and what any client types goes to the
 * guest (the tmux `vm` window, `snabbvm console`, and the web console all share it).
 *
 * In-process terminals call attach(); other processes connect to the hub's unix socket, a raw byte stream. Each
 * terminal first gets the last few KiB of output (from a line start), so it doesn't start on a blank screen, with
 * the guest's terminal queries taken out: a terminal answers what it is shown, and answers to long-gone queries
 * would reach the guest as typed text. What terminals send goes through a ReplyArbiter, so each live query gets
 * one answer however many terminals are attached.
 */
export interface SerialHub {
  readonly socketPath: string;
  /** calls onOutput with each chunk the guest writes; returns the unsubscribe function */
  subscribe(onOutput: (chunk: Buffer) => void): () => void;
  /** a terminal in this process: it gets the replay and then every chunk; what it sends goes through the arbiter */
  attach(onOutput: (chunk: Buffer) => void): TerminalInput;
  /** sends keystrokes to the guest */
  write(input: Buffer | string): void;
  /** the last 64 KiB the guest wrote since the hub connected */
  recent(): Buffer;
  /** how many socket clients are connected now */
  readonly clientCount: number;
  /** resolves when QEMU closed the serial connection (the VM ended) or stop() was called */
  readonly closed: Promise<void>;
  /** disconnects every client and closes the socket; safe to call twice */
  stop(): Promise<void>;
}

/**
 * Connects to QEMU's serial socket (retrying until it appears, up to timeoutMs) and starts serving the hub socket.
 */
export async function startSerialHub(qemuSerialSocket: string, hubSocket: string, timeoutMs = 10_000): Promise<SerialHub> {
  const upstream = await connectWithRetry(qemuSerialSocket, timeoutMs);
  const listeners = new Set<(chunk: Buffer) => void>();
  const clients = new Set<net.Socket>();
  let recent = Buffer.alloc(0);
  let stopped = false;
  const arbiter = new ReplyArbiter((bytes) => write(bytes));

  let markClosed!: () => void;
  const closed = new Promise<void>((resolve) => (markClosed = resolve));

  upstream.on('data', (chunk: Buffer) => {
    arbiter.guestWrote(chunk);
    recent = recent.length + chunk.length > RECENT_BYTES ? Buffer.concat([recent, chunk]).subarray(-RECENT_BYTES) : Buffer.concat([recent, chunk]);
    for (const listener of listeners) listener(chunk);
  });
  upstream.on('error', () => {});
  upstream.on('close', () => void stop());

  const server = net.createServer((client) => {
    if (stopped) return client.destroy();
    clients.add(client);
    const terminal = attach((chunk) => {
      // a client that can't keep up loses output rather than stalling the guest or the other clients
      if (client.writableLength < 1024 * 1024) client.write(chunk);
    });
    client.on('data', (input: Buffer) => terminal.write(input));
    client.on('error', () => {});
    client.on('close', () => {
      terminal.detach();
      clients.delete(client);
    });
  });
  rmSync(hubSocket, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(hubSocket, () => resolve());
  });

  function subscribe(onOutput: (chunk: Buffer) => void): () => void {
    listeners.add(onOutput);
    return () => listeners.delete(onOutput);
  }
  function attach(onOutput: (chunk: Buffer) => void): TerminalInput {
    onOutput(stripQueries(replayFor(recent)));
    const unsubscribe = subscribe(onOutput);
    const input = arbiter.attach();
    return {
      write: (bytes) => input.write(bytes),
      detach: () => {
        unsubscribe();
        input.detach();
      },
    };
  }
  function write(input: Buffer | string): void {
    if (!stopped) upstream.write(input);
  }
  async function stop(): Promise<void> {
    if (stopped) return closed;
    stopped = true;
    listeners.clear();
    for (const client of clients) client.end();
    upstream.destroy();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      // clients that don't close their end are cut off
      setTimeout(() => {
        for (const client of clients) client.destroy();
      }, 500).unref();
    });
    rmSync(hubSocket, { force: true });
    markClosed();
  }

  return {
    socketPath: hubSocket,
    subscribe,
    attach,
    write,
    recent: () => recent,
    get clientCount() {
      return clients.size;
    },
    closed,
    stop,
  };
}

async function connectWithRetry(path: string, timeoutMs: number): Promise<net.Socket> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await new Promise<net.Socket>((resolve, reject) => {
        const socket = net.createConnection(path);
        socket.once('connect', () => {
          socket.off('error', reject);
          resolve(socket);
        });
        socket.once('error', reject);
      });
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`cannot connect to QEMU's serial console at ${path}: ${(err as Error).message}`);
      await sleep(100);
    }
  }
}

/** The tail of the recent output a new client sees: at most REPLAY_BYTES, starting at a line. */
export function replayFor(recent: Buffer): Buffer {
  if (recent.length <= REPLAY_BYTES) return recent;
  const tail = recent.subarray(-REPLAY_BYTES);
  const nl = tail.indexOf(0x0a);
  return nl >= 0 ? tail.subarray(nl + 1) : tail;
}
