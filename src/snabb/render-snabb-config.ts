/** One port of a snabbnfv configuration: a vhost-user socket and what Snabb does to its traffic. */
export interface SnabbPort {
  /** names the port's apps and, through the socket pattern's %s, its socket: [A-Za-z0-9_] only */
  portId: string;
  mac?: string;
  vlan?: number;
  ingress?: string;
  egress?: string;
  rxPolice?: number;
  txPolice?: number;
}

/**
 * A Lua string literal that holds exactly `text`: backslash, quote and every byte outside printable ASCII are
 * escaped as \ddd, so no quote, newline or `]]` in a user's filter can end the string or the file.
 */
export function luaString(text: string): string {
  let out = '"';
  for (const byte of Buffer.from(text, 'utf8')) {
    if (byte === 0x5c) out += '\\\\';
    else if (byte === 0x22) out += '\\"';
    else if (byte < 0x20 || byte >= 0x7f) out += `\\${String(byte).padStart(3, '0')}`;
    else out += String.fromCharCode(byte);
  }
  return `${out}"`;
}

/** The Lua file `snabb snabbnfv traffic` reads (and rereads when its mtime changes). Pure. */
export function renderSnabbConfig(ports: readonly SnabbPort[]): string {
  const lines = ports.map((p) => {
    if (!/^[A-Za-z0-9_]+$/.test(p.portId)) throw new Error(`port_id '${p.portId}' may only hold letters, digits and '_'`);
    const fields = [`port_id = ${luaString(p.portId)}`];
    if (p.mac !== undefined) fields.push(`mac_address = ${luaString(p.mac)}`);
    if (p.vlan !== undefined) fields.push(`vlan = ${integer(p.vlan)}`);
    if (p.ingress !== undefined) fields.push(`ingress_filter = ${luaString(p.ingress)}`);
    if (p.egress !== undefined) fields.push(`egress_filter = ${luaString(p.egress)}`);
    if (p.rxPolice !== undefined) fields.push(`rx_police = ${number(p.rxPolice)}`);
    if (p.txPolice !== undefined) fields.push(`tx_police = ${number(p.txPolice)}`);
    return `  { ${fields.join(', ')} },`;
  });
  return `-- written by snabbvm; Snabb rereads it when it changes\nreturn {\n${lines.join('\n')}\n}\n`;
}

function integer(n: number): string {
  if (!Number.isSafeInteger(n)) throw new Error(`${n} is not an integer`);
  return String(n);
}
function number(n: number): string {
  if (!Number.isFinite(n)) throw new Error(`${n} is not a finite number`);
  return String(n);
}

/**
 * Snabb's socket pattern for a folder: %s becomes the port_id. Snabb fills it in with Lua's string.format, so a
 * '%' in the folder's name is doubled.
 */
export function buildSocketPattern(dir: string): string {
  return `${dir.replace(/%/g, '%%')}/%s.sock`;
}

export interface SnabbCommand {
  binary: string;
  /** a PCI address, or 'soft' for the software switch */
  device: string;
  configPath: string;
  socketPattern: string;
  /** pin Snabb to this CPU (a core of the NIC's NUMA node) */
  cpu?: number;
}

/** `snabb snabbnfv traffic` for one NIC: link report every 10 s, no debug report. Pure. */
export function buildSnabbArgv(c: SnabbCommand): string[] {
  const snabb = [c.binary, 'snabbnfv', 'traffic', '-k', '10', '-D', '0', c.device, c.configPath, c.socketPattern];
  return c.cpu === undefined ? snabb : ['taskset', '-c', String(c.cpu), ...snabb];
}
