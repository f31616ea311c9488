import { accessSync, constants, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { hostError, type UserError } from '../errors.js';
import type { CleanupStack } from '../lifecycle/cleanup-stack.js';
import { log } from '../log.js';
import { ProgramError, runProgram } from '../process/run-program.js';
import type { PortCounters } from '../snabb/port-status.js';
import { hasCapability, onPath, parseCapEff } from './check-network-host.js';
import { applySteps } from './net-steps.js';
import { parseIngressQdisc, parseNetdevLink, type NetdevLink, type NetdevPortPlan } from './plan-netdev.js';

const CAP_NET_ADMIN = 12;
const POLL_MS = 250;
const PROGRESS_EVERY_MS = 10_000;

/** netdev: ports make a tap and tc filters: CAP_NET_ADMIN, /dev/net/tun, ip and tc. Touches nothing. */
export function checkNetdevHost(): UserError[] {
  let status = '';
  try {
    status = readFileSync('/proc/self/status', 'utf8');
  } catch {}
  if (!hasCapability(parseCapEff(status), CAP_NET_ADMIN)) {
    return [hostError('netdev: ports need CAP_NET_ADMIN for a tap and tc filters, and this process lacks it; run the container privileged (containerlab does by default), or with --cap-add NET_ADMIN --device /dev/net/tun')];
  }
  try {
    accessSync('/dev/net/tun', constants.R_OK | constants.W_OK);
  } catch {
    return [hostError('netdev: ports need /dev/net/tun for the VM\'s tap, and it is missing; run the container privileged, or with --device /dev/net/tun')];
  }
  const missing = ['ip', 'tc'].filter((p) => !onPath(p));
  return missing.length > 0 ? [hostError(`netdev: ports need ${missing.join(' and ')}; install them (apt-get install iproute2)`)] : [];
}

/** The interface, or undefined while it does not exist. */
async function probeLink(name: string): Promise<NetdevLink | undefined> {
  try {
    return parseNetdevLink((await runProgram(['ip', '-j', 'link', 'show', 'dev', name], { timeoutMs: 10_000 })).stdout);
  } catch (err) {
    if (err instanceof ProgramError && err.exit?.code !== 0 && /does not exist|Cannot find device/.test(err.stderrTail)) return undefined;
    throw err;
  }
}

/**
 * Waits until every interface exists and is up (containerlab moves it into the container, renames it, sets its
 * MAC, then brings it up), with a progress line every 10 s. Exit 4 after timeoutSec; a stop signal ends the wait.
 */
export async function waitForInterfaces(names: string[], timeoutSec: number, signal?: AbortSignal): Promise<Map<string, NetdevLink>> {
  const found = new Map<string, NetdevLink>();
  const started = Date.now();
  let nextProgress = started + PROGRESS_EVERY_MS;
  let announced = false;
  for (;;) {
    for (const name of names) {
      if (found.has(name)) continue;
      const link = await probeLink(name);
      if (link?.up) {
        found.set(name, link);
        if (announced) log.info(`netdev:${name}: the interface appeared after ${((Date.now() - started) / 1000).toFixed(1)} s`);
      }
    }
    const waiting = names.filter((n) => !found.has(n));
    if (waiting.length === 0) return found;
    const elapsed = Date.now() - started;
    if (elapsed >= timeoutSec * 1000) {
      const states = await Promise.all(waiting.map(async (n) => `${n} ${(await probeLink(n)) ? 'is down' : 'does not exist'}`));
      throw hostError(`netdev: ports: ${states.join(', ')} after ${timeoutSec} s; check the links of the containerlab topology (or create the interface), or wait longer with --netdev-timeout`);
    }
    if (!announced) {
      log.info(`netdev: waiting up to ${timeoutSec} s for ${waiting.join(', ')} to appear and come up in this container (containerlab adds its links after the container starts)`);
      announced = true;
    } else if (Date.now() >= nextProgress) {
      log.info(`netdev: still waiting for ${waiting.join(', ')} (${Math.round(elapsed / 1000)} s of ${timeoutSec} s)`);
      nextProgress += PROGRESS_EVERY_MS;
    }
    signal?.throwIfAborted();
    await sleep(POLL_MS, undefined, signal ? { signal } : {}).catch(() => signal?.throwIfAborted());
  }
}

/** Checks the interface is free for us: no ingress or clsact qdisc of someone else (or of a run killed outright). */
export async function checkInterfaceFree(link: NetdevLink): Promise<UserError[]> {
  const kind = parseIngressQdisc((await runProgram(['tc', '-j', 'qdisc', 'show', 'dev', link.name])).stdout);
  if (kind === undefined) return [];
  return [hostError(`netdev:${link.name}: the interface already has an ${kind} qdisc (another program's tc filters, or a run killed outright); remove it with: tc qdisc del dev ${link.name} ${kind}`)];
}

/**
 * Makes the tap and the redirects of both directions. Each step's undo is registered as it is done. The
 * interface's qdisc is removed at teardown only if the interface is still there (a deleted veth took it along).
 */
export async function applyNetdevPort(plan: NetdevPortPlan, cleanup: CleanupStack): Promise<void> {
  await applySteps(plan.tapSteps, cleanup);
  await applySteps([{ what: plan.interfaceQdisc.what, argv: plan.interfaceQdisc.argv }], cleanup);
  const undo = plan.interfaceQdisc.undo;
  const name = `undo: ${plan.interfaceQdisc.what}`;
  cleanup.record(name, { argv: undo });
  cleanup.defer(name, async () => {
    if ((await probeLink(plan.ifname)) !== undefined) await runProgram(undo);
  });
  await applySteps([plan.interfaceRedirect], cleanup);
}

/**
 * A netdev: port's traffic, from its tap's kernel counters (/sys/class/net/TAP/statistics): what the tap received
 * is what the VM sent; what it sent, or dropped because QEMU did not read it, is what went to the VM.
 */
export function readTapCounters(tap: string, sysClassNet = '/sys/class/net'): PortCounters | undefined {
  const read = (name: string) => Number(readFileSync(`${sysClassNet}/${tap}/statistics/${name}`, 'utf8'));
  try {
    return { txPackets: read('rx_packets'), txBytes: read('rx_bytes'), rxPackets: read('tx_packets'), rxBytes: read('tx_bytes'), rxDrops: read('tx_dropped') };
  } catch {
    return undefined;
  }
}
