import { readdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ConsoleMode, VmConfig } from '../config/config.js';
import { hostError } from '../errors.js';
import { readState } from '../lifecycle/claim-run-dir.js';
import type { CleanupStack } from '../lifecycle/cleanup-stack.js';
import { startControlServer } from '../lifecycle/control-server.js';
import { log } from '../log.js';
import { bracketIpv6 } from '../network/bracket-ipv6.js';
import type { RuntimePaths } from '../paths.js';
import { runProgram } from '../process/run-program.js';
import type { VncPlan } from '../qemu/qemu-plan.js';
import type { StartedQemu } from '../qemu/start-qemu.js';
import { containerAddresses, describeUrls, reachableHostPorts } from './reachable-addresses.js';
import { startSerialHub, type SerialHub } from './serial-hub.js';
import { startSerialStream } from './stream-serial.js';
import { startTerminalAttach } from './terminal-attach.js';
import { planTmuxAttach, startTmuxSession, tmuxEnv, tmuxSessionName, type PortWindow, type TmuxSession, type TmuxSessionPlan } from './tmux-session.js';
import { listenWebConsole, type WebConsole } from '../web/web-server.js';
import { trackVmState, type VmStateTracker } from './track-vm-state.js';
import { parseDnsmasqLeases, parsePortStatuses, renderStatusBar, type VmStatus } from './vm-status.js';

/** VNC passwords are DES keys: the protocol uses at most 8 characters. */
export const VNC_PASSWORD_MAX = 8;

/**
 * VNC for QEMU's command line. A password goes into a 0600 file in the run folder, which QEMU reads as a secret
 * object, so it never appears on QEMU's command line (visible in ps).
 */
export async function planVnc(config: VmConfig, paths: RuntimePaths): Promise<VncPlan | undefined> {
  if (config.vncDisplay === undefined) return undefined;
  const plan: VncPlan = { listen: bracketIpv6(config.vncListen), display: config.vncDisplay };
  const webSocket = vncWebSocket(config, paths);
  if (webSocket !== undefined) plan.webSocket = webSocket;
  if (config.vncPassword !== undefined) {
    await writeFile(paths.vncPasswordFile, config.vncPassword, { mode: 0o600 });
    plan.passwordFile = paths.vncPasswordFile;
  }
  return plan;
}

/**
 * The web console's screen: a VNC display of QEMU's on a unix socket in the run folder, which the web console
 * relays with its password and Origin checks. Not QEMU's websocket VNC on loopback: in --net user the guest
 * reaches the host's loopback through 10.0.2.2, and would get the screen and keyboard without the password.
 */
export function vncWebSocket(config: VmConfig, paths: RuntimePaths): string | undefined {
  if (config.vncDisplay === undefined || config.webPort === undefined) return undefined;
  return paths.vncWebSocket;
}

/**
 * One line naming each console that anyone beyond this host's loopback can reach without a password (in --net
 * user the guest too reaches the loopback, through 10.0.2.2), or undefined when there is none.
 */
export function openConsolesWarning(config: VmConfig): string | undefined {
  const open: string[] = [];
  const exposed = (listen: string) => config.net === 'user' || !isLoopback(listen);
  if (config.vncDisplay !== undefined && config.vncPassword === undefined && exposed(config.vncListen)) {
    open.push(`VNC on ${bracketIpv6(config.vncListen)}:${5900 + config.vncDisplay} (--vnc-password)`);
  }
  if (config.webPort !== undefined && config.webPassword === undefined && exposed(config.webListen)) {
    open.push(`the web console on ${bracketIpv6(config.webListen)}:${config.webPort} (--web-password)`);
  }
  if (open.length === 0) return undefined;
  const who = config.net === 'user' ? 'anyone who reaches them, the guest included (10.0.2.2 is the loopback),' : 'anyone who reaches them';
  return `no password on ${open.join(' and ')}: ${who} gets the VM's screen and keyboard; set the password, or listen on 127.0.0.1 (docs/security.md)`;
}

function isLoopback(listen: string): boolean {
  const address = listen.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  return address === 'localhost' || address === '::1' || /^127\./.test(address);
}

/** What the launcher does with its own terminal and stdio. */
export interface ConsoleLayout {
  /** a tmux session with the serial console, the monitor and the Snabb logs */
  tmux: boolean;
  /** the launcher's terminal is attached to that session (docker run -it) */
  attachTerminal: boolean;
  /** the serial console is copied to stdout (docker logs shows the boot) */
  streamSerial: boolean;
  /** what comes in on stdin goes to the serial console (docker run -i without -t) */
  forwardStdin: boolean;
}

/**
 * --console auto: tmux when stdin and stdout are a terminal and tmux is installed, else serial on stdio.
 * --console tmux without a terminal makes the session for `snabbvm attach` and still streams the serial console.
 */
export function planConsoleLayout(mode: ConsoleMode, terminal: boolean, tmuxInstalled: boolean): ConsoleLayout {
  const tmux = mode === 'tmux' || (mode === 'auto' && terminal && tmuxInstalled);
  const attachTerminal = tmux && terminal;
  const stdio = mode !== 'none' && !attachTerminal;
  return { tmux, attachTerminal, streamSerial: stdio, forwardStdin: stdio };
}

/** Decided before QEMU starts, used again once it runs (the seams share no other state). */
const layouts = new WeakMap<RuntimePaths, ConsoleLayout>();
const webConsoles = new WeakMap<RuntimePaths, WebConsole>();

/**
 * Called before QEMU starts (so no boot output is missed): decides the console layout, and in headless mode starts
 * copying the serial log to stdout. Registers the teardown of what it starts.
 */
export async function startConsoles(config: VmConfig, paths: RuntimePaths, cleanup: CleanupStack): Promise<void> {
  // the launcher outlives its terminal: writing to one that is gone fails (EIO, EPIPE), which must not crash it
  for (const stream of [process.stdout, process.stderr]) if (stream.listenerCount('error') === 0) stream.on('error', () => {});
  const terminal = Boolean(process.stdin.isTTY && process.stdout.isTTY);
  const wantsTmux = config.console === 'tmux' || (config.console === 'auto' && terminal);
  const tmuxInstalled = wantsTmux && (await runProgram(['tmux', '-V']).then(() => true, () => false));
  if (config.console === 'tmux' && !tmuxInstalled) throw hostError('--console tmux needs tmux, which is not installed; install it, or use --console stdio');
  if (wantsTmux && !tmuxInstalled) log.warn('tmux is not installed: the serial console goes to this terminal instead (--console stdio)');
  const layout = planConsoleLayout(config.console, terminal, tmuxInstalled);
  layouts.set(paths, layout);
  const warning = openConsolesWarning(config);
  if (warning !== undefined) log.warn(warning);
  if (layout.streamSerial) {
    const serial = startSerialStream(paths.serialLog, process.stdout);
    cleanup.defer('stop serial stream', () => serial.stop());
  }
  if (config.webPort !== undefined) {
    // bound now, so a port in use fails the run before QEMU starts
    const web = await listenWebConsole({ listen: config.webListen, port: config.webPort, password: config.webPassword, name: config.name, hosts: config.webHosts });
    cleanup.defer('stop web console', () => web.stop());
    webConsoles.set(paths, web);
    const hostPorts = reachableHostPorts(config.webListen, config.webPort, await ownAddressesFor(config.webListen));
    log.info(`${describeUrls('web console', 'http', hostPorts)}${config.webPassword === undefined ? '' : ' (password required)'}`);
  }
  if (config.vncDisplay !== undefined) {
    const hostPorts = reachableHostPorts(config.vncListen, 5900 + config.vncDisplay, await ownAddressesFor(config.vncListen));
    log.info(`${describeUrls('VNC', '', hostPorts)}${config.vncPassword === undefined ? '' : ' (password required)'}`);
  }
}

/**
 * What the consoles share once QEMU runs. The web console builds on these: the serial hub for its terminal,
 * status() for its status panel, and the QMP connection in qemu for its buttons.
 */
export interface ConsoleServices {
  hub: SerialHub;
  vmState: VmStateTracker;
  status(): Promise<VmStatus>;
  qemu: StartedQemu;
}

/**
 * Once QEMU runs: the serial hub, the control socket (status, monitor, stop), and the tmux session and terminal
 * attach when the layout has them. Registers their teardown.
 */
export async function attachConsoles(config: VmConfig, paths: RuntimePaths, qemu: StartedQemu, cleanup: CleanupStack): Promise<void> {
  const layout = layouts.get(paths) ?? planConsoleLayout('none', false, false);
  const hub = await startSerialHub(paths.serialSocket, paths.consoleSocket);
  cleanup.defer('stop serial hub', () => hub.stop());
  const vmState = await trackVmState(qemu.qmp, qemu.ended);
  const status = () => currentStatus(config, paths, qemu, vmState, tmux?.plan.session);
  const services: ConsoleServices = { hub, vmState, status, qemu };

  let tmux: TmuxSession | undefined;
  let tmuxStarting: Promise<TmuxSession> | undefined;
  /** the session exists from the start with a terminal, or from the first `snabbvm attach` without one */
  const ensureTmux = async (): Promise<TmuxSession> => {
    if (tmux && (await tmux.isAlive())) return tmux;
    tmuxStarting ??= (async () => {
      const session = await startTmuxSession(planSession(config, paths, vncAddress(config)));
      cleanup.defer('stop tmux', () => session.stop());
      return session;
    })().finally(() => (tmuxStarting = undefined));
    tmux = await tmuxStarting;
    void showStatusInTmux(tmux, services, paths);
    return tmux;
  };

  const control = await startControlServer(paths.controlSocket, {
    status: () => status(),
    hmp: (req) => {
      if (typeof req.line !== 'string') throw new Error("hmp needs a 'line'");
      return qemu.qmp.hmp(req.line);
    },
    stop: () => {
      log.info('a stop was asked for over the control socket (snabbvm stop)');
      // the same path as docker stop: ACPI powerdown, --stop-timeout, then forced
      process.kill(process.pid, 'SIGTERM');
      return { stopTimeoutSec: config.stopTimeoutSec };
    },
    /** answers when QEMU has exited: how the VM ended (guest-shutdown, forced, crashed) */
    'wait-end': async () => ({ how: (await qemu.ended).how }),
    attach: async () => {
      const session = await ensureTmux();
      return { socket: session.plan.socket, session: session.plan.session };
    },
  });
  cleanup.defer('stop control socket', () => control.stop());

  if (layout.forwardStdin) {
    const stopForwarding = forwardStdin(hub);
    cleanup.defer('stop reading stdin', stopForwarding);
  }
  webConsoles.get(paths)?.serve({ hub, status: services.status, qmp: qemu.qmp, vncSocket: vncWebSocket(config, paths) });
  if (layout.tmux) await ensureTmux();
  if (layout.attachTerminal) {
    const attach = startTerminalAttach({
      attachArgv: ['tmux', ...planTmuxAttach({ socket: paths.tmuxSocket, session: tmuxSessionName(config.name) })],
      env: tmuxEnv(),
      ensureSession: async () => void (await ensureTmux()),
      vmEnded: qemu.ended,
      name: config.name,
    });
    cleanup.defer('detach the terminal', () => attach.stop());
  }
}

/** The container's addresses, looked up only for a wildcard listen address. */
async function ownAddressesFor(listen: string) {
  return ['0.0.0.0', '::', '[::]'].includes(listen) ? containerAddresses() : [];
}

function vncAddress(config: VmConfig): string | undefined {
  if (config.vncDisplay === undefined) return undefined;
  return `${bracketIpv6(config.vncListen)}:${5900 + config.vncDisplay}`;
}

function planSession(config: VmConfig, paths: RuntimePaths, vnc: string | undefined): TmuxSessionPlan {
  const plan: TmuxSessionPlan = {
    session: tmuxSessionName(config.name),
    socket: paths.tmuxSocket,
    self: [process.execPath, process.argv[1]!],
    runDir: paths.runDir,
    ports: portWindows(config, paths),
  };
  if (vnc !== undefined) plan.vnc = vnc;
  return plan;
}

/**
 * One window per Snabb port: the log the Snabb supervisor names in state.json's `ports`, or else the port's
 * log at its standard path (eth1 for the first port, ...).
 */
function portWindows(config: VmConfig, paths: RuntimePaths): PortWindow[] {
  const published = parsePortStatuses(readState(paths)?.ports).filter((p) => p.log !== undefined);
  if (published.length > 0) return published.map((p) => ({ name: p.name, log: p.log! }));
  return config.ports.map((_, i) => ({ name: `eth${i + 1}`, log: paths.snabbLog(i + 1) }));
}

/** Keeps the status bar's state and addresses current: at once on a state change, and every 5 s for addresses. */
async function showStatusInTmux(session: TmuxSession, services: ConsoleServices, paths: RuntimePaths): Promise<void> {
  let shown = '';
  const update = async () => {
    const bar = renderStatusBar({ state: services.vmState.state, addresses: guestAddresses(paths) });
    const key = `${bar.state}|${bar.addresses}`;
    if (key === shown) return;
    shown = key;
    await session.setStatus(bar.state, bar.addresses);
  };
  services.vmState.on('change', () => void update());
  const timer = setInterval(() => void update(), 5000);
  timer.unref();
  void services.qemu.ended.then(() => clearInterval(timer));
  await update();
}

async function currentStatus(config: VmConfig, paths: RuntimePaths, qemu: StartedQemu, vmState: VmStateTracker, tmuxSession: string | undefined): Promise<VmStatus> {
  await vmState.refresh();
  const state = readState(paths);
  const status: VmStatus = {
    name: config.name,
    state: vmState.state,
    qemuStatus: vmState.qemuStatus,
    launcherPid: process.pid,
    qemuPid: qemu.program.pid,
    cpus: config.cpus,
    memoryMiB: config.memoryMiB,
    startedAt: vmState.startedAt.toISOString(),
    uptimeSec: Math.round((Date.now() - vmState.startedAt.getTime()) / 1000),
    addresses: guestAddresses(paths),
    ports: parsePortStatuses(state?.ports),
  };
  if (typeof state?.accel === 'string') status.accel = state.accel;
  if (typeof state?.accelFallback === 'string') status.accelFallback = state.accelFallback;
  if (typeof state?.snabb === 'object' && state.snabb !== null) status.snabb = state.snabb as NonNullable<VmStatus['snabb']>;
  const vnc = vncAddress(config);
  if (vnc !== undefined) status.vnc = vnc;
  if (config.webPort !== undefined) status.web = config.webPort;
  if (tmuxSession !== undefined) status.tmuxSession = tmuxSession;
  return status;
}

/**
 * The guest's addresses, where known: state.json's `addresses` (written by whoever configured them, such as a
 * static --ip), and the leases of the VM's own dnsmasq.
 */
export function guestAddresses(paths: RuntimePaths): string[] {
  const found = new Set<string>();
  const published = readState(paths)?.addresses;
  if (Array.isArray(published)) for (const a of published) if (typeof a === 'string') found.add(a.replace(/\/\d+$/, ''));
  try {
    for (const file of readdirSync(paths.dnsmasqDir).filter((f) => /leases$/.test(f))) {
      for (const lease of parseDnsmasqLeases(readFileSync(path.join(paths.dnsmasqDir, file), 'utf8'))) found.add(lease.ip);
    }
  } catch {}
  return [...found];
}

/** docker run -i without -t: what the user types (a line at a time) goes to the serial console. */
function forwardStdin(hub: SerialHub): () => void {
  const stdin = process.stdin;
  const terminal = hub.attach(() => {}); // its output goes to stdout by another way (stream-serial)
  const onData = (data: Buffer) => terminal.write(data);
  if (stdin.isTTY) stdin.setRawMode(true);
  stdin.on('data', onData);
  stdin.on('error', () => {});
  return () => {
    stdin.off('data', onData);
    terminal.detach();
    if (stdin.isTTY) stdin.setRawMode(false);
    stdin.destroy();
  };
}
