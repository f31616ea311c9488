#!/usr/bin/env bash
# Makes a Docker engine ready for the image tests: installs docker.io, and starts dockerd in the background if it
# is not running, then waits for it. Safe to run again.
#
# On a machine whose processes lack CAP_SYS_RESOURCE in their capability bounding set, `docker run --privileged`
# fails ("unable to apply caps"). There it registers docker/runc-without-sys-resource as dockerd's default runtime
# (see docs/docker.md), so the tests can still run the README's literal `docker run --privileged` command.
# Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
DOCKER=/usr/bin/docker # the client that matches Debian's engine (a newer one may sit in /usr/local/bin)
RUNTIME_NAME=snabbvm-runc
WRAPPER=/usr/local/libexec/snabbvm/runc-without-sys-resource
DAEMON_JSON=/etc/docker/daemon.json
LOG=/var/log/snabbvm-dockerd.log

log() { echo "setup-docker: $*"; }
[[ $EUID -eq 0 ]] || { log "error: must run as root"; exit 1; }

need=()
for p in docker.io jq; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if ((${#need[@]})); then
  log "apt-get install ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# CAP_SYS_RESOURCE is capability 24.
bounding=$(awk '/^CapBnd:/ { print $2 }' /proc/self/status)
if (((16#$bounding >> 24) & 1)); then
  want_runtime=runc
  log "CAP_SYS_RESOURCE is in the bounding set: plain runc, --privileged works as on users' hosts"
else
  want_runtime=$RUNTIME_NAME
  log "CAP_SYS_RESOURCE is missing from this machine's bounding set: dockerd's default runtime is $WRAPPER (drops it from each container's spec)"
  install -D -m 0755 docker/runc-without-sys-resource "$WRAPPER"
  mkdir -p "$(dirname "$DAEMON_JSON")"
  current='{}'
  [[ -s $DAEMON_JSON ]] && current=$(cat "$DAEMON_JSON")
  updated=$(jq --arg name "$RUNTIME_NAME" --arg path "$WRAPPER" \
    '.runtimes[$name] = {path: $path} | .["default-runtime"] = $name' <<<"$current")
  if [[ $updated != "$(jq . <<<"$current")" ]]; then
    log "writing $DAEMON_JSON"
    printf '%s\n' "$updated" >"$DAEMON_JSON"
  fi
fi

engine_up() { timeout 10 "$DOCKER" info >/dev/null 2>&1; }

if ! engine_up; then
  if [[ -d /run/systemd/system ]] && systemctl list-unit-files docker.service >/dev/null 2>&1; then
    log "starting docker.service"
    systemctl start docker.service || true
  fi
fi
if ! engine_up; then
  log "starting dockerd in the background (log: $LOG)"
  rm -f /var/run/docker.pid
  setsid nohup dockerd >>"$LOG" 2>&1 </dev/null &
fi
for ((i = 0; i < 60; i++)); do
  engine_up && break
  sleep 1
done
engine_up || { log "error: dockerd did not come up in 60 s; see $LOG"; tail -n 20 "$LOG" >&2 || true; exit 1; }

# A dockerd that was already running reads runtimes and default-runtime again on SIGHUP.
if [[ $("$DOCKER" info --format '{{.DefaultRuntime}}') != "$want_runtime" ]]; then
  log "reloading dockerd's configuration (default runtime $want_runtime)"
  kill -HUP "$(cat /var/run/docker.pid)"
  for ((i = 0; i < 20; i++)); do
    [[ $("$DOCKER" info --format '{{.DefaultRuntime}}') == "$want_runtime" ]] && break
    sleep 0.5
  done
fi
got=$("$DOCKER" info --format '{{.DefaultRuntime}}')
[[ $got == "$want_runtime" ]] || { log "error: dockerd's default runtime is $got, not $want_runtime"; exit 1; }
log "ready: docker $("$DOCKER" version --format '{{.Server.Version}}'), default runtime $got"
