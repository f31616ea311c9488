import net from 'node:net';

async function isFree(port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** 5901 when it is free here, else another free display (other VMs may run on this machine) */
export async function freeVncDisplay(): Promise<number> {
  for (const display of [1, ...Array.from({ length: 60 }, (_, i) => 40 + i)]) {
    if (await isFree(5900 + display)) return display;
  }
  throw new Error('no free VNC port');
}

/** `preferred` when it is free, else the next free port above it */
export async function freePort(preferred: number): Promise<number> {
  for (let port = preferred; port < preferred + 200; port++) if (await isFree(port)) return port;
  throw new Error(`no free port from ${preferred}`);
}
