import { inputError, type UserError } from '../errors.js';
import { runProgram } from '../process/run-program.js';

/** A pcap filter from a port spec, and where it came from for the message. */
export interface FilterToCheck {
  where: string;
  expression: string;
}

// Compiles each filter with Snabb's own pflua, as snabbnfv will; the filters arrive in the environment, so no
// quoting is involved. Prints "<n>\t<error>" per bad filter, with newlines as \n.
const CHECK_SCRIPT = `
local pf = require("pf")
for i = 1, tonumber(os.getenv("SNABBVM_FILTERS")) do
  local ok, err = pcall(pf.compile_filter, os.getenv("SNABBVM_FILTER_" .. i))
  if not ok then print(i .. "\\t" .. (tostring(err):gsub("\\n", "\\\\n"))) end
end`;

/**
 * Checks the port specs' pcap filters before anything starts, so a typo is exit 3 with pflua's explanation and
 * not a Snabb that dies at every restart.
 */
export async function checkPcapFilters(snabbBinary: string, filters: readonly FilterToCheck[]): Promise<UserError[]> {
  if (filters.length === 0) return [];
  const env: NodeJS.ProcessEnv = { ...process.env, SNABBVM_FILTERS: String(filters.length) };
  filters.forEach((f, i) => (env[`SNABBVM_FILTER_${i + 1}`] = f.expression));
  const { stdout } = await runProgram([snabbBinary, 'snsh', '-e', CHECK_SCRIPT], { env, timeoutMs: 30_000 });
  const problems: UserError[] = [];
  for (const line of stdout.split('\n')) {
    const m = /^(\d+)\t(.*)$/.exec(line);
    const f = m ? filters[Number(m[1]) - 1] : undefined;
    if (!m || !f) continue;
    problems.push(inputError(`${f.where}: '${f.expression}' is not a valid pcap filter: ${summarizePfluaError(m[2]!)}`));
  }
  return problems;
}

/** pflua's multi-line error (with \n escapes) as one short line. Pure. */
export function summarizePfluaError(escaped: string): string {
  const lines = escaped
    .split('\\n')
    .map((l) => l.replace(/^\S*\.lua:\d+:\s*/, '').trim())
    .filter((l) => l !== '' && !/^\^+$/.test(l) && !/^Pflua parse error: In expression/.test(l));
  return lines.slice(0, 1).join(' ').replace(/\. Likely causes:$/, '') || 'pflua rejected it';
}
