import { inputError, usageError, type UserError } from '../errors.js';
import { normalizePciAddress, parsePortSpec } from './port-spec.js';

/**
 * Ports handed to the pod by a Kubernetes device plugin. The SR-IOV network device plugin tells a container which
 * PCI functions it got as `PCIDEVICE_<RESOURCE>=0000:05:00.0,0000:05:00.1`, where RESOURCE is the resource name
 * (intel.com/snabb_82599) upper-cased with '.' and '/' turned into '_', and adds `PCIDEVICE_<RESOURCE>_INFO` with
 * JSON about the devices, which is not a list of addresses.
 */
const PREFIX = 'PCIDEVICE_';

/** intel.com/snabb_82599 → PCIDEVICE_INTEL_COM_SNABB_82599; a name that already is a variable stays as it is. */
export function devicePluginVariable(resource: string): string {
  if (resource.startsWith(PREFIX)) return resource;
  return PREFIX + resource.replace(/[./]/g, '_').toUpperCase();
}

/** The PCIDEVICE_* variables that hold addresses: all of them but each one's `_INFO` companion. */
function addressVariables(env: NodeJS.ProcessEnv): string[] {
  const names = Object.keys(env).filter((n) => n.startsWith(PREFIX) && n.length > PREFIX.length);
  return names.filter((n) => !(n.endsWith('_INFO') && names.includes(n.slice(0, -'_INFO'.length)))).sort();
}

/** `vlan=42,ip=10.1.1.1/24;vlan=43`: one entry per port, separated by ';' or newlines (a port spec has neither). */
function splitPortOptions(text: string): string[] {
  const entries = text.split(/[;\n]/).map((e) => e.trim());
  while (entries.length > 0 && entries[entries.length - 1] === '') entries.pop();
  return entries;
}

/**
 * The device plugin's ports as port specs (`0000:05:00.0,vlan=42`), to follow the ports given as arguments.
 * - resources: --ports-from-env; without it, the one PCIDEVICE_* variable when there is exactly one; `none` reads
 *   none. Several resources give their ports in the order named.
 * - Within a resource the addresses are sorted: the kubelet hands the devices over in no fixed order, so sorting
 *   keeps eth1, eth2, ... on the same ports across restarts.
 * - portOptions: --port-options, one entry per device plugin port, in the same order.
 * Problems are collected, not thrown; the ports returned are the valid ones.
 */
export function planDevicePluginPorts(
  env: NodeJS.ProcessEnv,
  resources: readonly string[] | undefined,
  portOptions: string | undefined,
): { ports: string[]; problems: UserError[] } {
  const problems: UserError[] = [];
  const names = (resources ?? []).flatMap((r) => r.split(/[\s,]+/)).filter((r) => r !== '');
  const present = addressVariables(env);

  let variables: string[];
  if (resources === undefined) {
    if (present.length > 1) {
      problems.push(
        usageError(
          `the device plugin set several resources (${present.join(', ')}); name the ones that are VM ports, in order, with --ports-from-env RESOURCE[,RESOURCE] (SNABBVM_PORTS_FROM_ENV), or none`,
        ),
      );
      return { ports: [], problems };
    }
    variables = present;
  } else if (names.length === 1 && names[0] === 'none') {
    variables = [];
  } else {
    variables = [];
    for (const name of names) {
      const variable = devicePluginVariable(name);
      if (env[variable] !== undefined) variables.push(variable);
      else {
        const set = present.length > 0 ? `the pod has ${present.join(', ')}` : 'the pod has no PCIDEVICE_* variable';
        problems.push(inputError(`--ports-from-env ${name}: ${variable} is not set (${set}); request the resource in the container's resources.limits, or correct the name`));
      }
    }
  }

  const addresses: string[] = [];
  for (const variable of variables) {
    const found: string[] = [];
    for (const text of (env[variable] ?? '').split(',').map((a) => a.trim()).filter((a) => a !== '')) {
      const pci = normalizePciAddress(text);
      if (pci === undefined) problems.push(inputError(`${variable}: '${text}' is not a PCI address; the device plugin should give DDDD:BB:DD.F addresses separated by commas`));
      else found.push(pci);
    }
    addresses.push(...found.sort());
  }

  const entries = portOptions === undefined ? [] : splitPortOptions(portOptions);
  if (portOptions !== undefined && addresses.length === 0 && problems.length === 0) {
    problems.push(usageError(`--port-options (SNABBVM_PORT_OPTIONS) applies to the device plugin's ports, and there are none; give options with ports as arguments instead (0000:05:00.0,vlan=42)`));
    return { ports: [], problems };
  }
  if (entries.length > addresses.length && addresses.length > 0) {
    problems.push(usageError(`--port-options (SNABBVM_PORT_OPTIONS) has ${entries.length} entries for the device plugin's ${addresses.length} port(s) (${addresses.join(', ')}); give at most one entry per port, separated by ';'`));
  }

  const ports: string[] = [];
  addresses.forEach((pci, i) => {
    const options = entries[i] ?? '';
    const text = options === '' ? pci : `${pci},${options}`;
    let valid = true;
    parsePortSpec(text, (msg) => {
      valid = false;
      problems.push(inputError(`--port-options entry ${i + 1} '${options}' for ${pci}: ${msg}`));
    });
    if (valid) ports.push(text);
  });
  return { ports, problems };
}
