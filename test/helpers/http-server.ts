/**
 * A small HTTP server on 127.0.0.1 for image download tests: serves real files with Range, ETag and
 * Last-Modified (and 304 / If-Range), redirects, and injected faults: a connection cut mid-body, a stall, an
 * HTTP status, an HTML page with 200, a slow rate. Every request is recorded, so tests can count them.
 */
import { createReadStream, statSync } from 'node:fs';
import http, { type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Fault {
  /** send this many body bytes, then cut the connection */
  cutAfterBytes?: number;
  /** send this many body bytes, then send nothing more (the socket stays open) */
  stallAfterBytes?: number;
  /** answer with this status and a short text body */
  status?: number;
  /** answer 200 with an HTML error page */
  html?: boolean;
  /** send at most this many bytes per second */
  bytesPerSecond?: number;
  /** how many requests the fault applies to (default: all) */
  times?: number;
}

export interface ServeOptions {
  etag?: boolean;
  lastModified?: boolean;
  /** answer Range requests (default true) */
  ranges?: boolean;
  contentType?: string;
  /** no Content-Length: the body goes chunked, as from a server that streams */
  chunked?: boolean;
}

export interface RequestRecord {
  path: string;
  headers: http.IncomingHttpHeaders;
  status: number;
  /** body bytes sent */
  bodyBytes: number;
}

export interface TestHttpServer {
  /** http://127.0.0.1:PORT + path */
  url(path: string): string;
  port: number;
  serve(path: string, file: string, options?: ServeOptions): void;
  redirect(path: string, to: string, status?: number): void;
  fault(path: string, fault: Fault): void;
  clearFaults(): void;
  requests: RequestRecord[];
  /** requests for `path` that got body bytes of the file (200 or 206) */
  bodyRequests(path: string): RequestRecord[];
  close(): Promise<void>;
}

const HTML_PAGE = '<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body><p>Please sign in to download this file.</p></body></html>\n';

export async function startHttpServer(): Promise<TestHttpServer> {
  const files = new Map<string, { file: string; options: ServeOptions }>();
  const redirects = new Map<string, { to: string; status: number }>();
  const faults = new Map<string, Fault>();
  const requests: RequestRecord[] = [];
  const sockets = new Set<Socket>();

  const takeFault = (path: string): Fault | undefined => {
    const f = faults.get(path);
    if (!f) return undefined;
    if (f.times !== undefined) {
      if (f.times <= 0) return undefined;
      f.times--;
    }
    return f;
  };

  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const record: RequestRecord = { path, headers: req.headers, status: 0, bodyBytes: 0 };
    requests.push(record);
    const send = (status: number, headers: http.OutgoingHttpHeaders, body?: string) => {
      record.status = status;
      res.writeHead(status, headers);
      res.end(body);
    };

    const redirect = redirects.get(path);
    if (redirect) return send(redirect.status, { location: redirect.to }, '');
    const fault = takeFault(path);
    if (fault?.status) return send(fault.status, { 'content-type': 'text/plain' }, `${fault.status} injected\n`);
    if (fault?.html) return send(200, { 'content-type': 'text/html; charset=utf-8' }, HTML_PAGE);
    const served = files.get(path);
    if (!served) return send(404, { 'content-type': 'text/plain' }, 'not found\n');

    const { file, options } = served;
    const st = statSync(file);
    const etag = `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`;
    const lastModified = st.mtime.toUTCString();
    const headers: http.OutgoingHttpHeaders = { 'content-type': options.contentType ?? 'application/octet-stream' };
    if (options.etag !== false) headers.etag = etag;
    if (options.lastModified !== false) headers['last-modified'] = lastModified;
    if (options.ranges !== false) headers['accept-ranges'] = 'bytes';

    const inm = req.headers['if-none-match'];
    const ims = req.headers['if-modified-since'];
    if ((options.etag !== false && inm === etag) || (options.lastModified !== false && inm === undefined && ims && Date.parse(ims) >= Math.floor(st.mtimeMs / 1000) * 1000)) {
      return send(304, headers);
    }

    let start = 0;
    let end = st.size - 1;
    let status = 200;
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    const ifRange = req.headers['if-range'];
    const rangeStillValid = ifRange === undefined || ifRange === etag || ifRange === lastModified;
    if (range && options.ranges !== false && rangeStillValid) {
      start = Number(range[1]);
      if (range[2]) end = Math.min(end, Number(range[2]));
      if (start >= st.size) return send(416, { 'content-range': `bytes */${st.size}` });
      status = 206;
      headers['content-range'] = `bytes ${start}-${end}/${st.size}`;
    }
    if (!options.chunked) headers['content-length'] = end - start + 1;
    record.status = status;
    res.writeHead(status, headers);
    void streamBody(res, file, start, end, fault, record);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;

  return {
    port,
    url: (path) => `http://127.0.0.1:${port}${path}`,
    serve: (path, file, options = {}) => void files.set(path, { file, options }),
    redirect: (path, to, status = 302) => void redirects.set(path, { to, status }),
    fault: (path, fault) => void faults.set(path, { ...fault }),
    clearFaults: () => faults.clear(),
    requests,
    bodyRequests: (path) => requests.filter((r) => r.path === path && (r.status === 200 || r.status === 206) && r.bodyBytes > 0),
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function streamBody(res: ServerResponse, file: string, start: number, end: number, fault: Fault | undefined, record: RequestRecord): Promise<void> {
  const limit = fault?.cutAfterBytes ?? fault?.stallAfterBytes ?? Infinity;
  const t0 = Date.now();
  try {
    for await (const data of createReadStream(file, { start, end, highWaterMark: 256 * 1024 })) {
      if (res.destroyed) return;
      let chunk = data as Buffer;
      if (record.bodyBytes + chunk.length > limit) chunk = chunk.subarray(0, limit - record.bodyBytes);
      if (chunk.length > 0 && !res.write(chunk)) await new Promise((r) => res.once('drain', r));
      record.bodyBytes += chunk.length;
      if (fault?.bytesPerSecond) {
        const due = t0 + (record.bodyBytes / fault.bytesPerSecond) * 1000;
        if (due > Date.now()) await sleep(due - Date.now());
      }
      if (record.bodyBytes >= limit) {
        if (fault?.cutAfterBytes !== undefined) {
          // let the bytes go out, then cut the connection without finishing the body
          await sleep(50);
          res.socket?.destroy();
        }
        return; // a stall: never end the response
      }
    }
    res.end();
  } catch {
    res.destroy();
  }
}
