import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { defaultBaseDir, loadConfig } from '../config/load-config.js';
import { positionalsWithEnv, readEnvOptions, runOptions, type RawOptions } from '../config/options.js';
import { ExitCode, ProblemsError, usageError } from '../errors.js';
import { runVm } from '../lifecycle/run-vm.js';
import { setQuiet } from '../log.js';
import { mistypedCommand, unknownOptionMessage, warnAboutQemuxVariables } from './hints.js';
import { subcommandHelp, subcommands } from './subcommands.js';

export const VERSION = (
  JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

const HELP_AFTER_OPTIONS = `
Every option can also be set in the environment (shown in brackets); the flag wins. The image can be given in
SNABBVM_IMAGE and the ports in SNABBVM_PORTS (separated by spaces or newlines); arguments win over them.
Exit codes: 0 guest powered off, 1 failure, 2 usage, 3 bad input, 4 host not ready, 5 guest forced off after --stop-timeout.

Ports (eth1, eth2, ... in the VM, in order; docs/snabb.md):
  0000:05:00.0[,key=value...]          an 82599 port driven by Snabb (05:00.0 works too)
    ,vlan=N                            tag the VM's frames with VLAN N, pass it only VLAN N
    ,ip=10.1.1.1/24 | ,ip=dhcp         the guest's address on that NIC (repeatable)
  soft,peer=SOCKET[,key=value...]      a Snabb software link to another vhost-user socket: no NIC needed
  vhost-user:SOCKET                    QEMU serves SOCKET for a switch that runs elsewhere
  PCIDEVICE_<RESOURCE>=ADDR,...        a device plugin's PCI addresses (Kubernetes): ports after the arguments,
                                       sorted; --ports-from-env picks the resource, --port-options their options
  netdev:IFNAME                        the container's interface (a containerlab link), every frame passed by tc

Examples:
  docker run -it --rm --privileged --stop-timeout 90 -v $PWD:/u -p 2222:22 -p 8006:8006 snabbvm \\
      -u user_data.txt debian-12-genericcloud-amd64.qcow2
  snabbvm -m 2G -c 2 debian-12.qcow2 0000:05:00.0,vlan=42,ip=10.1.1.1/24
  snabbvm --name vm2 debian-12.qcow2 soft,peer=/run/sw/vm1.sock
  snabbvm --share shared:data --qemu-arg=-smbios --qemu-arg type=1,serial=X debian-12.qcow2
                                       /u/shared at /mnt/data in the guest; raw QEMU arguments (unsupported)`;

/** The commander program for `snabbvm [options] <image> [port ...]`, built from the option table. */
export function buildRunParser(): Command {
  const program = new Command('snabbvm')
    .usage('[options] <image file in /u, or URL> [PCI address | vhost-user:PATH ...]')
    .description('Run a VM from a disk image or ISO, with Snabb-driven 10GbE ports, in one docker run.')
    .argument('[image]', 'disk image (qcow2, raw, ...) or ISO: a file in /u, or an http(s) URL [SNABBVM_IMAGE]')
    .argument('[ports...]', 'PCI addresses of 82599 ports (eth1, eth2, ...), soft,peer=SOCKET, vhost-user:SOCKET or netdev:IFNAME [SNABBVM_PORTS]')
    .version(VERSION, '-v, --version')
    .helpOption('-h, --help', 'show this help')
    .exitOverride()
    .configureOutput({ outputError: () => {} })
    .addHelpText('after', HELP_AFTER_OPTIONS + subcommandHelp);
  for (const spec of runOptions) {
    const option = new Option(spec.flags, `${spec.description}${spec.defaultText ? ` (default: ${spec.defaultText})` : ''} [${spec.env}]`);
    if (spec.repeatable) option.argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]);
    if (spec.hidden) option.hideHelp();
    program.addOption(option);
  }
  return program;
}

/** Parses argv over the environment. Commander's own errors become usage errors (exit 2). */
export function parseRunArgs(argv: string[], env: NodeJS.ProcessEnv): { raw: RawOptions; positionals: string[] } | 'exit' {
  const program = buildRunParser();
  try {
    program.parse(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return 'exit';
      const message = err.code === 'commander.unknownOption' ? unknownOptionMessage(err.message) : err.message.replace(/^error: /, '').replace(/\s*\n\s*/g, ' ');
      throw usageError(`${message}; see snabbvm --help`);
    }
    throw err;
  }
  const envProblems: string[] = [];
  const fromEnv = readEnvOptions(env, envProblems);
  if (envProblems.length > 0) throw new ProblemsError(envProblems.map(usageError));
  const args = (program.processedArgs.flat() as (string | undefined)[]).filter((a) => a !== undefined);
  return { raw: { ...fromEnv, ...(program.opts() as RawOptions) }, positionals: positionalsWithEnv(args, env) };
}

/** `help` and `version` as words, as docker and limactl take them: `snabbvm help [command]`. */
const wordCommands: Record<string, (argv: string[], env: NodeJS.ProcessEnv) => Promise<ExitCode>> = {
  help: (argv, env) => {
    const subcommand = argv[0] !== undefined ? subcommands[argv[0]] : undefined;
    return subcommand ? subcommand(['--help'], env) : runCommand(['--help'], env);
  },
  version: (_argv, env) => runCommand(['--version'], env),
};

export async function runCommand(argv: string[], env: NodeJS.ProcessEnv, baseDir = defaultBaseDir()): Promise<ExitCode> {
  const subcommand = argv[0] !== undefined ? (subcommands[argv[0]] ?? wordCommands[argv[0]]) : undefined;
  if (subcommand) return subcommand(argv.slice(1), env);
  const parsed = parseRunArgs(argv, env);
  if (parsed === 'exit') return ExitCode.Ok;
  const imageArg = parsed.positionals[0];
  const meant = imageArg === undefined ? undefined : mistypedCommand(imageArg, [...Object.keys(subcommands), ...Object.keys(wordCommands)], baseDir);
  if (meant !== undefined) throw usageError(`'${imageArg}' is neither an image file nor a command; did you mean '${meant}'? (see snabbvm --help)`);
  warnAboutQemuxVariables(env);
  const config = loadConfig({ ...parsed, env, baseDir });
  setQuiet(config.quiet);
  return runVm(config);
}
