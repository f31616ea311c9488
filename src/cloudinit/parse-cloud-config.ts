import { isAlias, isMap, isScalar, isSeq, parseAllDocuments, Parser, visit, type Document } from 'yaml';

/** Where a problem is, 1-based, in the text as the user wrote it. */
export interface TextProblem {
  message: string;
  offset: number;
}

/** `doc` is undefined for a file with nothing but comments (cloud-init accepts it, and does nothing). */
export type CloudConfigResult = { ok: true; doc: Document | undefined } | { ok: false; problem: TextProblem };

/**
 * Parses #cloud-config YAML the way cloud-init does (PyYAML's safe_load: YAML 1.1, duplicate keys allowed, one
 * document, a mapping or nothing at the top). Pure.
 *
 * The `yaml` package is stricter than PyYAML in one place: it wants the continuation lines of a multi-line quoted
 * string or flow collection ([...], {...}) indented past their parent, and PyYAML does not. Such lines are indented
 * before parsing (leading space on those lines is not part of the value), so no file cloud-init accepts is refused.
 */
export function parseCloudConfig(text: string): CloudConfigResult {
  const bad = firstNonPrintable(text);
  if (bad !== undefined) {
    const hex = text.codePointAt(bad)!.toString(16).toUpperCase().padStart(4, '0');
    return { ok: false, problem: { offset: bad, message: `the character U+${hex} is not allowed in YAML; remove it` } };
  }

  // `shifts` maps offsets in the re-indented text back to the user's text.
  let current = text;
  const shifts: { at: number; by: number }[] = [];
  const original = (offset: number) => {
    let o = offset;
    for (const s of [...shifts].reverse()) if (o >= s.at) o = Math.max(s.at, o - s.by);
    return o;
  };
  for (let round = 0; ; round++) {
    const docs = parseAllDocuments(current, { version: '1.1', uniqueKeys: false, strict: false });
    const documents = Array.isArray(docs) ? docs : [];
    const error = documents.flatMap((d) => d.errors)[0];
    if (error) {
      const fixed = round < 200 ? reindentOneFlowConstruct(current) : undefined;
      if (fixed) {
        current = fixed.text;
        shifts.push(...fixed.shifts);
        continue;
      }
      return { ok: false, problem: describeYamlError(error, current, original) };
    }
    const tab = firstTabOutsideScalars(current);
    if (tab !== undefined) {
      return { ok: false, problem: { offset: original(tab), message: "YAML as cloud-init reads it (PyYAML) allows a tab only inside quotes, block scalars (|, >) and comments; use spaces here" } };
    }
    const loaderProblem = documents[0] && pyyamlLoaderProblem(documents[0]);
    if (loaderProblem) return { ok: false, problem: { ...loaderProblem, offset: original(loaderProblem.offset) } };
    // PyYAML's safe_load reads one document; a second one ('---', or content after '...') is an error.
    const isEmpty = (d: Document) => d.contents === null || (isScalar(d.contents) && d.contents.value === null && d.contents.source === '');
    const extra = documents.slice(1).find((d) => d.directives?.docStart || !isEmpty(d));
    if (extra) {
      return { ok: false, problem: { offset: original(extra.range[0]), message: "a second YAML document starts here; cloud-config is one document: remove this '---' (or what follows '...')" } };
    }
    const doc = documents[0];
    const top = doc?.contents;
    if (!doc || top === null || top === undefined || isMap(top) || (isScalar(top) && top.value === null)) return { ok: true, doc };
    const kind = isSeq(top) ? 'a list' : isScalar(top) ? `a ${typeof top.value === 'string' ? 'string' : 'scalar'}` : 'not a mapping';
    return {
      ok: false,
      problem: {
        offset: original(top.range?.[0] ?? 0),
        message: `the top level is ${kind}; cloud-config must be a mapping of keys such as runcmd:, users:, write_files:`,
      },
    };
  }
}

/**
 * PyYAML's scanner skips only spaces between tokens and ends a plain scalar at a tab, so a tab anywhere but inside
 * quotes, a block scalar or a comment fails the whole file (YAML 1.2 and the `yaml` package allow more).
 */
function firstTabOutsideScalars(text: string): number | undefined {
  let first: number | undefined;
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) return node.forEach(walk);
    if (node === null || typeof node !== 'object') return;
    const t = node as { type?: string; offset?: number; source?: unknown };
    if ((t.type === 'space' || t.type === 'scalar' || t.type === 'newline') && typeof t.source === 'string' && typeof t.offset === 'number') {
      const i = t.source.indexOf('\t');
      if (i !== -1 && (first === undefined || t.offset + i < first)) first = t.offset + i;
    }
    if (t.type === 'block-scalar' || t.type === 'comment' || t.type === 'single-quoted-scalar' || t.type === 'double-quoted-scalar') return;
    for (const v of Object.values(node)) if (v !== null && typeof v === 'object') walk(v);
  };
  for (const token of new Parser().parse(text)) walk(token);
  return first;
}

/** The tags cloud-init's loader (PyYAML's SafeLoader, plus python/unicode) can construct. */
const PYYAML_SAFE_TAGS = new Set(
  ['null', 'bool', 'int', 'float', 'binary', 'timestamp', 'omap', 'pairs', 'set', 'str', 'seq', 'map', 'python/unicode'].map((t) => `tag:yaml.org,2002:${t}`),
);

/** What PyYAML refuses after parsing: tags it can't construct, aliases to no anchor, an anchor defined twice. */
function pyyamlLoaderProblem(doc: Document): TextProblem | undefined {
  for (const warning of doc.warnings) {
    const tag = /^Unresolved tag: (\S+)/.exec(warning.message)?.[1];
    if (warning.code === 'TAG_RESOLVE_FAILED' && tag && !PYYAML_SAFE_TAGS.has(tag)) {
      return { offset: warning.pos[0], message: `the tag ${tag} is not one cloud-init's YAML loader can read; remove it` };
    }
  }
  let problem: TextProblem | undefined;
  const anchors = new Set<string>();
  visit(doc, (_key, node) => {
    if (isAlias(node) && node.resolve(doc) === undefined) {
      problem = { offset: node.range?.[0] ?? 0, message: `the alias *${node.source} refers to no anchor &${node.source} before it` };
      return visit.BREAK;
    }
    const anchor = (node as { anchor?: string } | null)?.anchor;
    if (anchor !== undefined) {
      if (anchors.has(anchor)) {
        problem = { offset: (node as { range?: [number] }).range?.[0] ?? 0, message: `the anchor &${anchor} is defined a second time; give it another name` };
        return visit.BREAK;
      }
      anchors.add(anchor);
    }
    return undefined;
  });
  return problem;
}

/** PyYAML refuses any character outside its printable set (C0 controls but tab/LF/CR, DEL, C1 but NEL, U+FFFE/F). */
function firstNonPrintable(text: string): number | undefined {
  const m = /[^\x09\x0A\x0D\x20-\x7E\x85\xA0-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u.exec(text);
  return m?.index;
}

const FRIENDLY: Record<string, string> = {
  TAB_AS_INDENT: 'a tab is used for indentation; YAML allows only spaces there',
  BLOCK_AS_IMPLICIT_KEY: "a mapping cannot start here; put a value that contains ': ' in quotes, and indent the keys of one mapping equally",
};

function describeYamlError(
  error: { code: string; message: string; pos: [number, number] },
  text: string,
  original: (offset: number) => number,
): TextProblem {
  let offset = error.pos[0];
  let message = FRIENDLY[error.code] ?? error.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
  if (error.code === 'MISSING_CHAR' && /closing .?quote/.test(message)) {
    // Point at the opening quote, not at the end of the file where the lexer gave up.
    const open = flowConstructs(text).filter((c) => c.offset <= offset && (text[c.offset] === '"' || text[c.offset] === "'")).pop();
    if (open) {
      offset = open.offset;
      message = `this ${text[offset] === '"' ? 'double' : 'single'}-quoted string is never closed; add the closing ${text[offset]}`;
    }
  }
  message = message.charAt(0).toLowerCase() + message.slice(1);
  return { offset: original(offset), message };
}

/** Multi-line quoted scalars and flow collections, as the `yaml` package's CST sees them (outermost first). */
function flowConstructs(text: string): { offset: number }[] {
  const found: { offset: number }[] = [];
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) return node.forEach(walk);
    if (node === null || typeof node !== 'object') return;
    const t = node as { type?: string; offset?: number };
    if ((t.type === 'double-quoted-scalar' || t.type === 'single-quoted-scalar') && typeof t.offset === 'number') found.push({ offset: t.offset });
    if (t.type === 'flow-collection') {
      const start = (node as { start?: { offset: number } }).start;
      if (start) found.push({ offset: start.offset });
    }
    for (const v of Object.values(node)) if (v !== null && typeof v === 'object') walk(v);
  };
  for (const token of new Parser().parse(text)) walk(token);
  return found.sort((a, b) => a.offset - b.offset);
}

/**
 * Finds the first quoted string or flow collection whose real end (by its quotes or brackets) lies on a later line
 * that is indented less than the construct starts, and indents those lines. Returns undefined when there is none.
 */
function reindentOneFlowConstruct(text: string): { text: string; shifts: { at: number; by: number }[] } | undefined {
  for (const { offset } of flowConstructs(text)) {
    const end = flowEnd(text, offset);
    if (end === undefined) continue;
    const lineStart = text.lastIndexOf('\n', offset - 1) + 1;
    const need = offset - lineStart + 1;
    const shifts: { at: number; by: number }[] = [];
    let out = '';
    let copied = 0;
    for (let nl = text.indexOf('\n', offset); nl !== -1 && nl < end; nl = text.indexOf('\n', nl + 1)) {
      const from = nl + 1;
      let spaces = 0;
      while (text[from + spaces] === ' ') spaces++;
      if (spaces >= need || /[\r\n]/.test(text[from + spaces] ?? '\n')) continue;
      out += text.slice(copied, from) + ' '.repeat(need - spaces);
      copied = from;
      shifts.push({ at: from + shifts.reduce((n, s) => n + s.by, 0), by: need - spaces });
    }
    if (shifts.length === 0) continue;
    return { text: out + text.slice(copied), shifts };
  }
  return undefined;
}

/** The offset just past the end of the quoted string or flow collection that starts at `start`, if it ends. */
function flowEnd(text: string, start: number): number | undefined {
  const open = text[start];
  if (open === '"') {
    for (let i = start + 1; i < text.length; i++) {
      if (text[i] === '\\') i++;
      else if (text[i] === '"') return i + 1;
    }
    return undefined;
  }
  if (open === "'") {
    for (let i = start + 1; i < text.length; i++) {
      if (text[i] === "'") {
        if (text[i + 1] === "'") i++;
        else return i + 1;
      }
    }
    return undefined;
  }
  const closers: string[] = [];
  let previous = open!; // the last character that was not white space
  for (let i = start; i < text.length; i++) {
    const c = text[i]!;
    if (c === '#' && /\s/.test(text[i - 1] ?? '\n')) {
      const nl = text.indexOf('\n', i);
      if (nl === -1) return undefined;
      i = nl;
      continue;
    }
    if ((c === '"' || c === "'") && '[{,:?'.includes(previous)) {
      const end = flowEnd(text, i);
      if (end === undefined) return undefined;
      i = end - 1;
      previous = c;
      continue;
    }
    if (c === '[' || c === '{') closers.push(c === '[' ? ']' : '}');
    else if (c === ']' || c === '}') {
      if (closers.pop() !== c) return undefined;
      if (closers.length === 0) return i + 1;
    }
    if (!/\s/.test(c)) previous = c;
  }
  return undefined;
}
