#!/usr/bin/env bash
# Builds a Debian 13 (trixie) base image like debian:trixie-slim, for machines that can't reach Docker Hub:
# debootstrap --variant=minbase, slimmed BEFORE `docker import` (a later layer can't shrink what an earlier one
# holds): no apt lists, cached debs, docs, man pages or locales, and dpkg path-excludes so that later installs
# stay slim too.
#
# Prints ONLY the image's tag on stdout (logs go to stderr), e.g. snabbvm-base/debian:trixie-0123456789abcdef.
# Cached: the tag carries a hash of this script, the mirror and debootstrap's version, so a second run with the
# same inputs finds the image and returns at once.
# Env:
#   SNABBVM_DEBIAN_MIRROR   Debian mirror (default: the one apt uses here, else deb.debian.org)
#   SNABBVM_DOCKER_CACHE    debootstrap's package cache (default: /var/cache/snabbvm-docker)
# Needs root and a running dockerd (scripts/setup-docker.sh).
set -euo pipefail
exec 3>&1 1>&2 # fd 3 = the real stdout, for the tag only
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C
DOCKER=/usr/bin/docker
SUITE=trixie
REPO=snabbvm-base/debian

log() { echo "build-base-image: $*"; }
die() { log "error: $*"; exit 1; }
[[ $EUID -eq 0 ]] || die "must run as root"
command -v debootstrap >/dev/null || {
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
}

# The mirror apt uses here (any suite: the same archive serves trixie), else deb.debian.org.
find_mirror() {
  [[ -n ${SNABBVM_DEBIAN_MIRROR:-} ]] && { echo "$SNABBVM_DEBIAN_MIRROR"; return; }
  local m
  m=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk 'tolower($1) == "uris:" && $2 !~ /security/ { print $2; exit }')
  [[ -n $m ]] || m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
    sed -E 's/^[ \t]*deb[ \t]+(\[[^]]*\][ \t]+)?/deb /' | awk '$1 == "deb" && $2 !~ /security/ { print $2; exit }')
  echo "${m:-http://deb.debian.org/debian}"
}
MIRROR=$(find_mirror)
MIRROR=${MIRROR%/}
SECURITY_MIRROR=${MIRROR%/debian}/debian-security

self=$(readlink -f "${BASH_SOURCE[0]}")
key=$({
  sha256sum <"$self"
  echo "$MIRROR $SUITE"
  debootstrap --version
} | sha256sum | cut -c1-16)
TAG=$REPO:$SUITE-$key

if "$DOCKER" image inspect "$TAG" >/dev/null 2>&1; then
  log "cached: $TAG"
  echo "$TAG" >&3
  exit 0
fi

CACHE=${SNABBVM_DOCKER_CACHE:-/var/cache/snabbvm-docker}
mkdir -p "$CACHE/debootstrap-$SUITE"
exec 9>"$CACHE/.base-image.lock"
flock 9
if "$DOCKER" image inspect "$TAG" >/dev/null 2>&1; then # built by the run we waited for
  echo "$TAG" >&3
  exit 0
fi

ROOT=$(mktemp -d "$CACHE/root.XXXXXX")
remove_root() { # undo what an interrupted debootstrap may have left mounted, then delete
  awk -v d="$ROOT/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r | xargs -r -n1 umount -l || true
  rm -rf --one-file-system "$ROOT"
}
trap remove_root EXIT
trap 'exit 130' INT TERM HUP

start=$SECONDS
log "debootstrap --variant=minbase $SUITE from $MIRROR"
if ! debootstrap --variant=minbase --arch=amd64 --cache-dir="$(readlink -f "$CACHE/debootstrap-$SUITE")" \
  "$SUITE" "$ROOT" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1; then
  tail -n 30 "$CACHE/debootstrap.log"
  die "debootstrap failed; its log: $CACHE/debootstrap.log"
fi

log "slimming the tree"
# What debian:*-slim keeps out, now and for every later apt-get install in images built on this one.
cat >"$ROOT/etc/dpkg/dpkg.cfg.d/docker-slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
CFG
cat >"$ROOT/etc/apt/apt.conf.d/docker-clean" <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CFG
cat >"$ROOT/etc/apt/apt.conf.d/docker-no-languages" <<'CFG'
Acquire::Languages "none";
CFG
rm -f "$ROOT/etc/apt/sources.list"
cat >"$ROOT/etc/apt/sources.list.d/debian.sources" <<SRC
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
find "$ROOT/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$ROOT/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$ROOT"/usr/share/{man,groff,info,lintian,linda,locale}/* \
  "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/cache/apt/*.bin \
  "$ROOT"/var/cache/debconf/*-old "$ROOT"/var/lib/dpkg/*-old "$ROOT"/var/log/* "$ROOT"/tmp/* \
  "$ROOT"/etc/machine-id "$ROOT"/etc/hostname "$ROOT"/etc/resolv.conf
echo localhost >"$ROOT/etc/hostname" # docker replaces hostname, hosts and resolv.conf at run time
: >"$ROOT/etc/resolv.conf"

log "docker import $TAG ($(du -sm "$ROOT" | cut -f1) MB)"
tar --numeric-owner -C "$ROOT" -c . | "$DOCKER" import \
  --change 'CMD ["bash"]' --change 'ENV LANG=C.UTF-8' \
  --message "debootstrap --variant=minbase $SUITE $MIRROR, slimmed (scripts/build-base-image.sh)" - "$TAG" >/dev/null
"$DOCKER" tag "$TAG" "$REPO:$SUITE"
log "built $TAG in $((SECONDS - start)) s"
echo "$TAG" >&3
