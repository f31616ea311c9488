import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
/** a package's folder, found from its main file (some packages' exports hide package.json) */
const packageRoot = (name: string, mainDepth: number) => path.resolve(require.resolve(name), ...Array<string>(mainDepth).fill('..'));

/**
 * The folders the web console serves, by URL prefix: our page (web/ beside dist/, in the repo and in the image)
 * and the browser libraries from node_modules. Only the folders named here are reachable.
 */
const ROOTS: { prefix: string; dir: () => string; allow: RegExp }[] = [
  { prefix: '/', dir: () => fileURLToPath(new URL('../../../web/', import.meta.url)), allow: /^[\w-]+\.(html|js|css|png|svg)$/ },
  { prefix: '/vendor/novnc/', dir: () => packageRoot('@novnc/novnc', 2), allow: /^(core|vendor)\// },
  { prefix: '/vendor/xterm/', dir: () => packageRoot('@xterm/xterm', 2), allow: /^(lib\/xterm\.mjs|css\/xterm\.css)$/ },
  { prefix: '/vendor/xterm-addon-fit/', dir: () => packageRoot('@xterm/addon-fit', 2), allow: /^lib\/addon-fit\.mjs$/ },
];

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

/** The file behind a URL path, or undefined when it is not one we serve (never anything outside the roots). */
export function resolveAsset(urlPath: string): { path: string; type: string } | undefined {
  const wanted = urlPath === '/' ? '/index.html' : urlPath;
  let decoded: string;
  try {
    decoded = decodeURIComponent(wanted);
  } catch {
    return undefined;
  }
  if (decoded.includes('\0') || decoded.split('/').includes('..')) return undefined;
  // the longest matching prefix wins, so /vendor/... is never looked up in web/
  const root = ROOTS.filter((r) => decoded.startsWith(r.prefix)).sort((a, b) => b.prefix.length - a.prefix.length)[0];
  if (root === undefined) return undefined;
  const relative = decoded.slice(root.prefix.length);
  const type = TYPES[path.extname(relative)];
  if (!root.allow.test(relative) || type === undefined) return undefined;
  const dir = root.dir();
  const file = path.resolve(dir, relative);
  if (!file.startsWith(dir.endsWith(path.sep) ? dir : dir + path.sep)) return undefined;
  return { path: file, type };
}
