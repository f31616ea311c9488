#!/bin/bash
# Runs inside the PCI test host (test/pci-host.test.ts), from cloud-init, with the staged files at $S (9p).
# Reports as lines "PCITEST <what> <facts>" in $R/report.log, a writable 9p share the test on our machine reads
# and checks; the inner guest's console goes to $R/inner-console.log as it comes. Not the serial console: under
# TCG it sometimes doubles a byte ("snabbvvm"), and one doubled at a line's start hid a whole line from the test.
#   1. the launcher refuses the host's management NIC (virtio): its model, then (model let through) its use
#   2. the launcher with the e1000e (82574L) port and the inner guest (test/fixtures/build-inner-guest.sh): PCI
#      checks on the real sysfs, Snabb started on the device (unbound from e1000e); the inner guest pings the
#      test's responder through the NIC (stage 3), Snabb's counters after each round, Snabb killed with SIGKILL
#      between rounds; after SIGTERM the guest powers off and the device is back on e1000e with its link up
#   3. Snabb's intel_mp (test patch) alone on the device, frames looped from RX to TX (stage 2)
# Between rounds the script waits for $S/ack-<round>: the test has counted the wire by then.
set -u
S=${1:-/mnt/pci}
R=${2:-/mnt/report}
exec 7>>"$R/report.log" # one open file for every line of the report, so they follow one another
NIC=0000:00:10.0
dev=/sys/bus/pci/devices/$NIC
say() { echo "PCITEST $*" >&7; }
drv() { local l; l=$(readlink "$dev/driver") && basename "$l" || echo none; }
netdev() { ls "$dev/net" 2>/dev/null | head -n1; }
lastline() { tr -d '\r' | grep -v '^$' | tail -n1; }
snabbvm() { "$S/node" "$S/app/dist/src/cli/main.js" "$@"; }
# always called in a subshell ($(...) or &): exec, so that $! is the launcher itself and SIGTERM reaches it
launcher() { exec "$S/node" "$S/app/dist/src/cli/main.js" --console none --net none --vnc none --web none --accel tcg \
  --memory 128 --stop-timeout 120 --snabb "$S/snabb-82574l" "$@"; }
# the inner guest's own lines (its console is copied to $R/inner-console.log, below), whole ones only: a read may
# meet the last one half-written, and a burst line cut short would be reported as such
inner() {
  local s
  s=$(cat 2>/dev/null "$R/inner-console.log"; echo .) # the dot keeps a final newline from $(...)
  s=${s%.}
  grep '^INNER ' <<<"${s%"${s##*$'\n'}"}" # without what follows the last newline
}
# wait_inner REGEX SECONDS: until the inner guest says it (or its launcher is gone)
wait_inner() {
  for _ in $(seq $(($2 * 2))); do inner | grep -qE "$1" && return 0; kill -0 $lpid 2>/dev/null || return 1; sleep 0.5; done
  return 1
}
# the port as `snabbvm status --json` has it, once its counters stay the same for 3 s
port_status() {
  local a b
  for _ in $(seq 20); do
    a=$(snabbvm status --json --name inner | "$S/node" -e '
      const p = JSON.parse(require("fs").readFileSync(0, "utf8")).ports[0] ?? {}, c = p.counters ?? {};
      console.log(`state=${p.state} pid=${p.pid} restarts=${p.restarts} tx=${c.txPackets} rx=${c.rxPackets} rxdrops=${c.rxDrops} txbytes=${c.txBytes} rxbytes=${c.rxBytes}`)')
    [[ -n ${b:-} && $a == "$b" && $a == state=running* ]] && break
    b=$a
    sleep 3
  done
  echo "$a"
}
wait_ack() { for _ in $(seq 120); do [[ -e $S/ack-$1 ]] && return 0; sleep 0.5; done; return 1; }

say "start $(date +%s)"
modprobe e1000e # blacklisted at boot (build-pci-test-host.sh), so cloud-init named the management NIC first
for _ in $(seq 40); do [[ -n $(netdev) ]] && break; sleep 0.5; done
sysctl -q vm.nr_hugepages=128
say "nic id=$(cat $dev/vendor):$(cat $dev/device) driver=$(drv) netdev=$(netdev)"

mgmt_if=$(ip -4 route show default | awk '{ print $5; exit }')
mgmt=$(basename "$(dirname "$(readlink -f "/sys/class/net/$mgmt_if/device")")") # device is virtioN, on the PCI device
mgmt_id=$(sed 's/^0x//' "/sys/bus/pci/devices/$mgmt/vendor"):$(sed 's/^0x//' "/sys/bus/pci/devices/$mgmt/device")
out=$(launcher --name mgmt "$S/blank.qcow2" "$mgmt" 2>&1); code=$?
say "mgmt-model address=$mgmt if=$mgmt_if exit=$code $(lastline <<<"$out")"
out=$(launcher --name mgmt --test-pci-model "$mgmt_id" "$S/blank.qcow2" "$mgmt" 2>&1); code=$?
say "mgmt-use address=$mgmt exit=$code $(lastline <<<"$out")"

launcher --name inner --test-pci-model 8086:10d3 "$S/inner-guest.qcow2" "$NIC" >/tmp/inner.log 2>&1 &
lpid=$!
# the inner guest's serial console copied as it grows (its run folder goes when the launcher ends): for inner()
# here, and for the test as it comes, so that a stall shows where it stopped
( tail -F -n +1 /run/snabbvm/inner/serial.log 2>/dev/null | sed -u 's/\r//g' >"$R/inner-console.log" ) &
tailpid=$!
snabb=
for _ in $(seq 240); do
  snabb=$(pgrep -f "snabbnfv traffic .*$NIC" | head -n1)
  [[ -n $snabb && $(drv) == none ]] && break
  kill -0 $lpid 2>/dev/null || break
  sleep 0.5
done
# QEMU starts the guest once Snabb serves its vhost-user socket
for _ in $(seq 240); do grep -q "is running" /tmp/inner.log && break; kill -0 $lpid 2>/dev/null || break; sleep 0.5; done
say "inner-vm $(grep -o "VM 'inner' is running.*" /tmp/inner.log | head -n1)"
say "during driver=$(drv) snabb-pid=${snabb:-none} snabb-cmdline=$(tr '\0' ' ' </proc/${snabb:-0}/cmdline 2>/dev/null | tr -s ' ')"
say "during-launcher $(grep -E 'warning|warn' /tmp/inner.log | grep -o 'PCI device.*' | head -n1)"
for f in /run/snabbvm/inner/snabb/*.log; do
  [[ -f $f ]] && tail -n 8 "$f" | sed 's/^/PCITEST snabb-log /' >&7
done
# Stage 3: the inner guest's rounds of pings to the test's responder, through vhost-user, Snabb, the NIC
round() { # $1: the round, $2: how long it may take (s)
  wait_inner "^INNER round $1 burst" "$2"
  inner | sed 's/^INNER /PCITEST inner-guest /' >&7
  status=$(port_status)
  say "counters-$1 $status"
  wait_ack "$1" || say "no-ack-$1"
}
wait_inner '^INNER up' 900
round 1 900
old_snabb=$(grep -o 'pid=[0-9]*' <<<"$status" | cut -d= -f2) # the Snabb whose counters round 1 read
kill -KILL "$old_snabb"
say "snabb-killed pid=$old_snabb"
round 2 300
for f in /run/snabbvm/inner/snabb/*.log; do
  [[ -f $f ]] && tail -n 12 "$f" | sed 's/^/PCITEST snabb-log /' >&7
done
kill -TERM $lpid
wait $lpid; code=$?
sleep 1
pkill -P $tailpid; kill $tailpid
say "inner-guest-last $(inner | tail -n1)"
say "launcher-exit code=$code $(grep -o 'gave PCI device.*' /tmp/inner.log | head -n1)"
if=$(netdev)
say "after driver=$(drv) netdev=$if"
carrier=0
if [[ -n $if ]]; then
  ip link set dev "$if" up
  for _ in $(seq 40); do carrier=$(cat "/sys/class/net/$if/carrier" 2>/dev/null || echo 0); [[ $carrier == 1 ]] && break; sleep 0.5; done
fi
say "after-link carrier=$carrier $(ethtool "$if" 2>/dev/null | grep -E 'Link detected' | tr -d '\t')"
tail -n 30 /tmp/inner.log | sed 's/^/PCITEST inner-log /' >&7

# Stage 2: intel_mp alone, RX looped to TX, for as long as the test sends frames (it ends with "stop" frames)
if [[ -n $if ]]; then ip link set dev "$if" down; fi
say "loopback-start"
timeout 120 "$S/snabb" snsh "$S/loopback.lua" "$NIC" 30 2>&1 | sed -u 's/^/PCITEST loopback /' >&7
echo "$NIC" >/sys/bus/pci/drivers/e1000e/bind 2>/dev/null
say "loopback-end driver=$(drv)"
say "done"
