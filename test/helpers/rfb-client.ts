/**
 * A small RFB (VNC) client for tests: the version handshake, None or VNC authentication (DES challenge), and one
 * full framebuffer update in Raw encoding, so a test can look at the guest's screen.
 */
import { execFileSync } from 'node:child_process';
import net from 'node:net';

/** Reads exact byte counts from a socket. */
class ByteReader {
  private buffer = Buffer.alloc(0);
  private waiting: (() => void) | undefined;
  private ended = false;

  constructor(socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, d]);
      this.waiting?.();
    });
    socket.on('close', () => {
      this.ended = true;
      this.waiting?.();
    });
    socket.on('error', () => {});
  }

  async read(n: number): Promise<Buffer> {
    while (this.buffer.length < n) {
      if (this.ended) throw new Error(`the VNC server closed the connection (wanted ${n} bytes, have ${this.buffer.length})`);
      await new Promise<void>((resolve) => (this.waiting = resolve));
      this.waiting = undefined;
    }
    const out = this.buffer.subarray(0, n);
    this.buffer = this.buffer.subarray(n);
    return out;
  }
}

export interface RfbSession {
  version: string;
  securityTypes: number[];
  /** 'ok', or the server's reason when authentication failed */
  auth: 'ok' | { failed: string };
  width?: number;
  height?: number;
  name?: string;
  /** 32-bit pixels (0x00RRGGBB) of the first full update */
  pixels?: Uint32Array;
  /** distinct colours in the picture, and how many pixels differ from the most common one */
  colours?: number;
  foregroundPixels?: number;
}

/** The DES response to a VNC challenge. Node's OpenSSL 3 has DES only in its legacy provider: a child node loads it. */
export function vncAuthResponse(password: string, challenge: Buffer): Buffer {
  const key = Buffer.alloc(8);
  Buffer.from(password, 'latin1').copy(key, 0, 0, 8);
  // VNC's quirk: each key byte's bits are reversed
  for (let i = 0; i < 8; i++) {
    let b = key[i]!;
    let r = 0;
    for (let bit = 0; bit < 8; bit++) r |= ((b >> bit) & 1) << (7 - bit);
    key[i] = r;
    b = r;
  }
  const script =
    "const c=require('crypto');const [k,d]=process.argv.slice(1).map(h=>Buffer.from(h,'hex'));" +
    "const e=c.createCipheriv('des-ecb',k,null);e.setAutoPadding(false);process.stdout.write(Buffer.concat([e.update(d),e.final()]).toString('hex'))";
  const hex = execFileSync(process.execPath, ['--openssl-legacy-provider', '-e', script, key.toString('hex'), challenge.toString('hex')], { encoding: 'utf8' });
  return Buffer.from(hex, 'hex');
}

/** An RFB PointerEvent: the pointer at (x, y) of the framebuffer, no button pressed. */
export function pointerEvent(x: number, y: number): Buffer {
  const event = Buffer.alloc(6);
  event.writeUInt8(5, 0);
  event.writeUInt16BE(x, 2);
  event.writeUInt16BE(y, 4);
  return event;
}

/**
 * Connects, authenticates (VNC auth when a password is given and offered, else None), and when authenticated
 * moves the pointer to each of `pointer` in turn (a quarter second apart), then fetches one full frame if
 * `frame` is set.
 */
export async function rfbConnect(host: string, port: number, options: { password?: string; frame?: boolean; pointer?: { x: number; y: number }[] } = {}): Promise<RfbSession> {
  const socket = net.createConnection({ host, port });
  const reader = new ByteReader(socket);
  try {
    const version = (await reader.read(12)).toString('latin1');
    socket.write('RFB 003.008\n');
    const count = (await reader.read(1))[0]!;
    if (count === 0) {
      const len = (await reader.read(4)).readUInt32BE(0);
      throw new Error(`the VNC server refused: ${(await reader.read(len)).toString()}`);
    }
    const securityTypes = [...(await reader.read(count))];
    const session: RfbSession = { version, securityTypes, auth: 'ok' };
    if (options.password !== undefined && securityTypes.includes(2)) {
      socket.write(Buffer.from([2]));
      const challenge = await reader.read(16);
      socket.write(vncAuthResponse(options.password, challenge));
    } else if (securityTypes.includes(1)) {
      socket.write(Buffer.from([1]));
    } else {
      throw new Error(`no security type this client can use (offered ${securityTypes.join(', ')})`);
    }
    if ((await reader.read(4)).readUInt32BE(0) !== 0) {
      const len = (await reader.read(4)).readUInt32BE(0);
      session.auth = { failed: (await reader.read(len)).toString() };
      return session;
    }

    socket.write(Buffer.from([1])); // ClientInit: shared
    const init = await reader.read(24);
    session.width = init.readUInt16BE(0);
    session.height = init.readUInt16BE(2);
    session.name = (await reader.read(init.readUInt32BE(20))).toString();
    if (options.pointer?.length) {
      // SetEncodings (Raw), as every real client sends first: QEMU decides only then whether this client's
      // pointer is absolute; before it, it moves the pointer relatively
      socket.write(Buffer.from([2, 0, 0, 1, 0, 0, 0, 0]));
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    for (const { x, y } of options.pointer ?? []) {
      socket.write(pointerEvent(x, y));
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    if (!options.frame) return session;

    // 32 bpp, depth 24, little-endian, true colour, 8 bits per channel at shifts 16/8/0
    const format = Buffer.from([0, 0, 0, 0, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0]);
    const encodings = Buffer.from([2, 0, 0, 1, 0, 0, 0, 0]); // Raw only
    const request = Buffer.alloc(10);
    request.writeUInt8(3, 0);
    request.writeUInt16BE(session.width, 6);
    request.writeUInt16BE(session.height, 8);
    socket.write(Buffer.concat([format, encodings, request]));

    const pixels = new Uint32Array(session.width * session.height);
    for (;;) {
      const type = (await reader.read(1))[0]!;
      if (type === 2) continue; // Bell
      if (type === 3) {
        const len = (await reader.read(7)).readUInt32BE(3);
        await reader.read(len); // ServerCutText
        continue;
      }
      if (type !== 0) throw new Error(`unexpected RFB message ${type}`);
      const rects = (await reader.read(3)).readUInt16BE(1);
      for (let r = 0; r < rects; r++) {
        const h = await reader.read(12);
        const [x, y, w, hh, encoding] = [h.readUInt16BE(0), h.readUInt16BE(2), h.readUInt16BE(4), h.readUInt16BE(6), h.readInt32BE(8)];
        if (encoding !== 0) throw new Error(`unexpected encoding ${encoding}`);
        const data = await reader.read(w * hh * 4);
        for (let row = 0; row < hh; row++) {
          for (let col = 0; col < w; col++) pixels[(y + row) * session.width + x + col] = data.readUInt32LE((row * w + col) * 4) & 0xffffff;
        }
      }
      break;
    }
    const histogram = new Map<number, number>();
    for (const p of pixels) histogram.set(p, (histogram.get(p) ?? 0) + 1);
    const background = Math.max(...histogram.values());
    session.pixels = pixels;
    session.colours = histogram.size;
    session.foregroundPixels = pixels.length - background;
    return session;
  } finally {
    socket.destroy();
  }
}
