import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { parseRunArgs } from '../cli/run-command.js';
import { loadConfig } from '../config/load-config.js';
import { ExitCode, ProblemsError } from '../errors.js';
import { devicePluginVariable } from './device-plugin-ports.js';
import { parsePortSpecs } from './port-spec.js';

const dir = mkdtempSync(path.join(tmpdir(), 'snabbvm-dp-'));
writeFileSync(path.join(dir, 'disk.qcow2'), 'x');

/** argv and environment → the config's ports, as the CLI does it */
function portsFor(argv: string[], env: NodeJS.ProcessEnv): string[] {
  const parsed = parseRunArgs(argv, env);
  if (parsed === 'exit') throw new Error('unexpected exit');
  return loadConfig({ ...parsed, env, baseDir: dir }).ports;
}

function problemsFor(argv: string[], env: NodeJS.ProcessEnv): { messages: string[]; exitCode: number } {
  try {
    portsFor(argv, env);
  } catch (err) {
    if (err instanceof ProblemsError) return { messages: err.problems.map((p) => p.message), exitCode: err.exitCode };
    throw err;
  }
  assert.fail('no problem found');
}

// What the SR-IOV network device plugin sets for `intel.com/snabb_82599: 2` (pool_stub.go GetEnvs): the addresses in
// the kubelet's order, and a JSON companion.
const plugin = {
  PCIDEVICE_INTEL_COM_SNABB_82599: '0000:05:00.1,0000:05:00.0',
  PCIDEVICE_INTEL_COM_SNABB_82599_INFO: '{"0000:05:00.0":{"generic":{"deviceID":"0000:05:00.0"}},"0000:05:00.1":{"generic":{"deviceID":"0000:05:00.1"}}}',
};

test("the resource name becomes the plugin's variable name", () => {
  assert.equal(devicePluginVariable('intel.com/snabb_82599'), 'PCIDEVICE_INTEL_COM_SNABB_82599');
  assert.equal(devicePluginVariable('example.org/ports.10g'), 'PCIDEVICE_EXAMPLE_ORG_PORTS_10G');
  assert.equal(devicePluginVariable('PCIDEVICE_INTEL_COM_SNABB_82599'), 'PCIDEVICE_INTEL_COM_SNABB_82599');
});

test('PCIDEVICE_* addresses become ports after the arguments, sorted, with SNABBVM_PORT_OPTIONS per port', () => {
  const env = { ...plugin, SNABBVM_PORT_OPTIONS: 'vlan=42,ip=10.1.1.1/24;vlan=43,mac=52:54:00:00:00:43' };
  const ports = portsFor(['disk.qcow2', 'soft,peer=/run/sw/a.sock'], env);
  assert.deepEqual(ports, ['soft,peer=/run/sw/a.sock', '0000:05:00.0,vlan=42,ip=10.1.1.1/24', '0000:05:00.1,vlan=43,mac=52:54:00:00:00:43']);
  const specs = parsePortSpecs(ports);
  assert.deepEqual(
    specs.map((s) => [s.kind, s.kind === 'pci' ? s.pci : '', s.kind === 'pci' || s.kind === 'soft' ? s.vlan : undefined, s.addresses, s.mac]),
    [
      ['soft', '', undefined, [], undefined],
      ['pci', '0000:05:00.0', 42, ['10.1.1.1/24'], undefined],
      ['pci', '0000:05:00.1', 43, [], '52:54:00:00:00:43'],
    ],
  );
});

test('SNABBVM_PORTS and the plugin together; newlines separate options too, an empty entry leaves a port bare', () => {
  const env = { ...plugin, SNABBVM_PORTS: '0000:81:00.0', SNABBVM_PORT_OPTIONS: '\nvlan=7\n' };
  assert.deepEqual(portsFor([], { ...env, SNABBVM_IMAGE: 'disk.qcow2' }), ['0000:81:00.0', '0000:05:00.0', '0000:05:00.1,vlan=7']);
});

test('--ports-from-env names the resources and their order; short addresses are made whole', () => {
  const env = { PCIDEVICE_INTEL_COM_A: '06:00.0', PCIDEVICE_INTEL_COM_B: '0000:05:00.0', PCIDEVICE_INTEL_COM_GPU: '0000:3b:00.0' };
  assert.deepEqual(portsFor(['--ports-from-env', 'intel.com/b', '--ports-from-env', 'intel.com/a', 'disk.qcow2'], env), ['0000:05:00.0', '0000:06:00.0']);
  assert.deepEqual(portsFor(['disk.qcow2'], { ...env, SNABBVM_PORTS_FROM_ENV: 'intel.com/a, intel.com/b' }), ['0000:06:00.0', '0000:05:00.0']);
  assert.deepEqual(portsFor(['disk.qcow2'], { ...env, SNABBVM_PORTS_FROM_ENV: 'none' }), []);
});

test('no PCIDEVICE_* variable, no ports; several and no choice is a usage error naming them', () => {
  assert.deepEqual(portsFor(['disk.qcow2'], {}), []);
  const { messages, exitCode } = problemsFor(['disk.qcow2'], { PCIDEVICE_INTEL_COM_A: '0000:05:00.0', PCIDEVICE_INTEL_COM_B: '0000:06:00.0' });
  assert.equal(exitCode, ExitCode.Usage);
  assert.deepEqual(messages, [
    'the device plugin set several resources (PCIDEVICE_INTEL_COM_A, PCIDEVICE_INTEL_COM_B); name the ones that are VM ports, in order, with --ports-from-env RESOURCE[,RESOURCE] (SNABBVM_PORTS_FROM_ENV), or none',
  ]);
});

test('a resource the pod did not get, a malformed address, a bad option: one line each, exit 3', () => {
  const missing = problemsFor(['--ports-from-env', 'intel.com/snabb_x520', 'disk.qcow2'], plugin);
  assert.equal(missing.exitCode, ExitCode.BadInput);
  assert.deepEqual(missing.messages, [
    "--ports-from-env intel.com/snabb_x520: PCIDEVICE_INTEL_COM_SNABB_X520 is not set (the pod has PCIDEVICE_INTEL_COM_SNABB_82599); request the resource in the container's resources.limits, or correct the name",
  ]);

  const bad = problemsFor(['disk.qcow2'], { PCIDEVICE_INTEL_COM_SNABB_82599: '0000:05:00.0,0000:05:00.9\n', SNABBVM_PORT_OPTIONS: 'vlan=5000' });
  assert.equal(bad.exitCode, ExitCode.BadInput);
  assert.deepEqual(bad.messages, [
    "PCIDEVICE_INTEL_COM_SNABB_82599: '0000:05:00.9' is not a PCI address; the device plugin should give DDDD:BB:DD.F addresses separated by commas",
    "--port-options entry 1 'vlan=5000' for 0000:05:00.0: vlan '5000' is not valid; give a VLAN ID from 1 to 4094",
  ]);
  for (const m of [...missing.messages, ...bad.messages]) assert.doesNotMatch(m, /\n/);
});

test('more option entries than ports, or options and no plugin ports: usage errors', () => {
  const extra = problemsFor(['disk.qcow2'], { ...plugin, SNABBVM_PORT_OPTIONS: 'vlan=1;vlan=2;vlan=3' });
  assert.equal(extra.exitCode, ExitCode.Usage);
  assert.match(extra.messages[0]!, /has 3 entries for the device plugin's 2 port\(s\)/);
  const none = problemsFor(['disk.qcow2', '0000:05:00.0'], { SNABBVM_PORT_OPTIONS: 'vlan=1' });
  assert.equal(none.exitCode, ExitCode.Usage);
  assert.match(none.messages[0]!, /applies to the device plugin's ports, and there are none/);
});

test('a device given both as an argument and by the plugin is reported as used twice', () => {
  const { messages, exitCode } = problemsFor(['disk.qcow2', '05:00.1'], plugin);
  assert.equal(exitCode, ExitCode.BadInput);
  assert.deepEqual(messages, ["PCI address 0000:05:00.1 is given twice ('05:00.1' and '0000:05:00.1'); each port can be used once"]);
});
