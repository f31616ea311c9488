import { runProgram } from '../process/run-program.js';

/** A window per Snabb port: its name in the guest (eth1) and the log file to follow. */
export interface PortWindow {
  name: string;
  log: string;
}

export interface TmuxSessionPlan {
  /** the session name: tmuxSessionName() of the VM's --name / NAME, as in the original tool */
  session: string;
  /** the VM's own tmux server socket, so no other tmux server (or its config) is involved */
  socket: string;
  /** how to run this launcher's own subcommands: [node, main.js] */
  self: readonly string[];
  runDir: string;
  /** shown in the status bar: where VNC listens, e.g. 0.0.0.0:5901 */
  vnc?: string;
  ports: PortWindow[];
}

/**
 * The tmux session of a VM. tmux itself turns '.' and ':' in a session name into '_' (they separate window and
 * pane in a target), so VM 'web.1' gets session 'web_1'; every `-t` must use this name, not the VM's.
 */
export function tmuxSessionName(vmName: string): string {
  return vmName.replace(/[.:]/g, '_');
}

/** The user options the launcher sets to keep the status bar current. */
export const STATE_OPTION = '@snabbvm_state';
export const ADDRESSES_OPTION = '@snabbvm_addresses';

/**
 * tmux's argv (after `tmux`) that creates the whole session in one call, commands separated by ';' arguments.
 * Window `vm` is the serial console (through the launcher's serial hub), `monitor` is the QEMU monitor REPL,
 * then one window per Snabb port following its log. prefix-T splits a live status/counters view under any window.
 * Every command is given as argv, never through a shell, so no path needs quoting.
 */
export function planTmuxSession(plan: TmuxSessionPlan): string[] {
  const self = (...args: string[]) => [...plan.self, ...args, '--run-dir', plan.runDir];
  const stateColour = `#{?#{==:#{${STATE_OPTION}},running},#[fg=black#,bg=green],#[fg=black#,bg=yellow]}`;
  const statusRight = [
    `${stateColour} #{${STATE_OPTION}} #[default]`,
    ` #{?#{${ADDRESSES_OPTION}},#{${ADDRESSES_OPTION}},no address yet}`,
    plan.vnc ? ` | VNC ${plan.vnc}` : '',
    ' ',
  ].join('');
  const commands: string[][] = [
    ['new-session', '-d', '-s', plan.session, '-n', 'vm', '-x', '120', '-y', '40', ...self('console', '--escape', 'none')],
    ['set-option', '-g', STATE_OPTION, 'starting'],
    ['set-option', '-g', ADDRESSES_OPTION, ''],
    ['set-option', '-g', 'status-interval', '2'],
    ['set-option', '-g', 'status-left-length', '40'],
    ['set-option', '-g', 'status-right-length', '100'],
    ['set-option', '-g', 'status-left', '#[bold] #{session_name} #[default]'],
    ['set-option', '-g', 'status-right', statusRight],
    ['set-option', '-g', 'history-limit', '20000'],
    // the guest's own Escape key must not wait for tmux
    ['set-option', '-s', 'escape-time', '10'],
    ['set-option', '-wg', 'automatic-rename', 'off'],
    ['set-option', '-wg', 'allow-rename', 'off'],
    ['new-window', '-d', '-n', 'monitor', ...self('monitor', '--keep-open')],
    ...plan.ports.map((p) => ['new-window', '-d', '-n', p.name, 'tail', '-n', '+1', '-F', p.log]),
    ['bind-key', 'T', 'split-window', '-v', '-l', '12', ...self('status', '--watch')],
    ['select-window', '-t', `${plan.session}:vm`],
  ];
  return ['-S', plan.socket, '-f', '/dev/null', ...commands.flatMap((c, i) => (i === 0 ? c : [';', ...c]))];
}

/** tmux's argv that attaches a terminal to the session. */
export function planTmuxAttach(plan: Pick<TmuxSessionPlan, 'socket' | 'session'>): string[] {
  return ['-S', plan.socket, 'attach-session', '-t', plan.session];
}

/** tmux must not think it is nested in the user's own tmux. */
export function tmuxEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const { TMUX: _nested, TMUX_PANE: _pane, ...rest } = env;
  return rest;
}

export interface TmuxSession {
  readonly plan: TmuxSessionPlan;
  /** shows the VM's state and addresses in the status bar */
  setStatus(state: string, addresses: string): Promise<void>;
  isAlive(): Promise<boolean>;
  /** kills the VM's tmux server; safe to call twice */
  stop(): Promise<void>;
}

/** Creates the session on the VM's own tmux server (which forks into the background). */
export async function startTmuxSession(plan: TmuxSessionPlan): Promise<TmuxSession> {
  const tmux = (args: string[]) => runProgram(['tmux', ...args], { env: tmuxEnv(), timeoutMs: 10_000 });
  await tmux(planTmuxSession(plan));
  let stopped = false;
  return {
    plan,
    async setStatus(state, addresses) {
      if (stopped) return;
      await tmux(['-S', plan.socket, 'set-option', '-g', STATE_OPTION, state, ';', 'set-option', '-g', ADDRESSES_OPTION, addresses]).catch(() => {});
    },
    async isAlive() {
      if (stopped) return false;
      return tmux(['-S', plan.socket, 'has-session', '-t', plan.session]).then(
        () => true,
        () => false,
      );
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await tmux(['-S', plan.socket, 'kill-server']).catch(() => {});
    },
  };
}
