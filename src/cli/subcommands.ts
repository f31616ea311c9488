import type { ExitCode } from '../errors.js';
import { attachCommand } from './attach-command.js';
import { consoleCommand } from './console-command.js';
import { monitorCommand } from './monitor-command.js';
import { statusCommand } from './status-command.js';
import { stopCommand } from './stop-command.js';

/** Commands for a running VM (`docker exec <container> snabbvm <command>`), dispatched on the first argument. */
export const subcommands: Record<string, (argv: string[], env: NodeJS.ProcessEnv) => Promise<ExitCode>> = {
  status: statusCommand,
  console: consoleCommand,
  monitor: monitorCommand,
  attach: attachCommand,
  stop: stopCommand,
};

export const subcommandHelp = `

Commands for a running VM (docker exec [-it] <container> snabbvm <command>; each has --help):
  status [--json]    state, uptime, addresses, ports; exit 0 only when running (HEALTHCHECK)
  console            the serial console (Ctrl-] leaves)
  monitor [command]  the QEMU monitor
  attach             the tmux session: console, monitor, Snabb logs
  stop               ACPI shutdown, forced after --stop-timeout
  help [command]     this help, or a command's; version (or -v) the version`;
