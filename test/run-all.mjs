// Runs every test file under dist/ with node's test runner, one file at a time: the VM tests each boot a
// TCG guest, and two at once on a 2-core machine only make both slower.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname ?? path.dirname(new URL(import.meta.url).pathname), '..');
const files = readdirSync(path.join(root, 'dist'), { recursive: true })
  .filter((f) => f.endsWith('.test.js') && !f.startsWith('node_modules'))
  .map((f) => path.join('dist', f))
  .sort((a, b) => Number(a.startsWith('dist/test/')) - Number(b.startsWith('dist/test/')) || a.localeCompare(b));
const only = process.argv.slice(2);
const selected = only.length ? files.filter((f) => only.some((o) => f.includes(o))) : files;
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', ...selected], { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
