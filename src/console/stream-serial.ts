import { open } from 'node:fs/promises';

/**
 * Copies the serial log to a stream as it grows (headless mode: `docker logs` shows the boot).
 * Reads the log rather than the serial socket, so the socket stays free for `snabbvm console`.
 */
export function startSerialStream(logFile: string, out: NodeJS.WritableStream, intervalMs = 200) {
  let offset = 0;
  let stopped = false;
  const buf = Buffer.alloc(64 * 1024);

  const pump = async (): Promise<void> => {
    let fh;
    try {
      fh = await open(logFile, 'r');
    } catch {
      return; // not there yet
    }
    try {
      for (;;) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
        if (bytesRead === 0) break;
        offset += bytesRead;
        out.write(Buffer.from(buf.subarray(0, bytesRead)));
      }
    } finally {
      await fh.close();
    }
  };

  let running = Promise.resolve();
  const timer = setInterval(() => {
    running = running.then(pump);
  }, intervalMs);
  return {
    /** copies what is left, then stops */
    async stop(): Promise<void> {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      await (running = running.then(pump));
    },
  };
}
