import path from 'node:path';

/** Every runtime file of one VM, in one place. All live under the VM's run folder unless noted. */
export function runtimePaths(runDir: string) {
  const at = (name: string) => path.join(runDir, name);
  return {
    runDir,
    /** the launcher's own QMP connection */
    qmpSocket: at('qmp.sock'),
    /** a second QMP socket for `snabbvm status` and friends, since QEMU serves one client per socket */
    qmpToolsSocket: at('qmp-tools.sock'),
    /** the QEMU human monitor */
    monitorSocket: at('monitor.sock'),
    serialSocket: at('serial.sock'),
    /** the launcher's serial hub: many clients share QEMU's one serial connection (src/console/serial-hub.ts) */
    consoleSocket: at('console.sock'),
    /** the launcher's control socket: JSON lines for status, monitor commands and stop (src/lifecycle/control-server.ts) */
    controlSocket: at('control.sock'),
    /** the VM's own tmux server (never the user's default one) */
    tmuxSocket: at('tmux.sock'),
    /** the VNC password, mode 0600, read by QEMU as a secret object */
    vncPasswordFile: at('vnc-password'),
    /** QEMU's second VNC display, which only the web console's relay connects to */
    vncWebSocket: at('vnc-web.sock'),
    /** everything the guest wrote to its serial console */
    serialLog: at('serial.log'),
    qemuLog: at('qemu.log'),
    qemuPidFile: at('qemu.pid'),
    /** the KVM probe's test firmware, there only while the probe runs (src/qemu/probe-accel.ts) */
    kvmProbeFirmware: at('kvm-probe.bin'),
    /** the launcher's pid and facts for `snabbvm status` */
    stateFile: at('state.json'),
    /** held locked (flock) by the running launcher; also marks the folder as one snabbvm made */
    lockFile: at('launcher.lock'),
    /** the undo commands of what the launcher changed outside its folder, for a launcher that takes over after a crash */
    undoJournal: at('undo.jsonl'),
    overlay: at('disk.qcow2'),
    /** the --disk disks' overlays or blank disks, numbered from 1 after the boot disk */
    extraDisk: (n: number) => at(`disk${n}.qcow2`),
    /** UEFI: this VM's copy of OVMF's variable store, next to its disk */
    efiVars: at('efi-vars.fd'),
    /** the boot disk's first sectors as the guest sees them, read for --boot auto and removed at once */
    bootSectors: at('boot-sectors.bin'),
    seedDir: at('seed'),
    seedImage: at('seed.iso'),
    snabbDir: at('snabb'),
    snabbConfig: (nicIndex: number) => at(`snabb/eth${nicIndex}.lua`),
    snabbLog: (nicIndex: number) => at(`snabb/eth${nicIndex}.log`),
    /** Snabb replaces %s with the port_id */
    vhostSocketPattern: at('snabb/%s.sock'),
    vhostSocket: (portId: string) => at(`snabb/${portId}.sock`),
    dnsmasqDir: at('dnsmasq'),
    /** virtiofsd's socket and log for each --share (src/share/start-shares.ts) */
    sharesDir: at('shares'),
    virtiofsdSocket: (index: number) => at(`shares/virtiofsd-${index}.sock`),
    virtiofsdLog: (index: number) => at(`shares/virtiofsd-${index}.log`),
  };
}
export type RuntimePaths = ReturnType<typeof runtimePaths>;
