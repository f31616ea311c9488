#!/usr/bin/env bash
# Builds Snabb (the upstream release + snabb/*.patch) and installs it where the tests and the image build take it.
#
#   bash scripts/build-snabb.sh [SOURCE]        build (or take from the cache) and install
#   bash scripts/build-snabb.sh --print-version  only print the version string a build would write
#
# SOURCE, tried in this order:
#   1. the argument: a release tarball (file or http(s) URL), or a folder holding snabb-$SNABB_VERSION.tar.xz
#   2. ../shared/vendor/snabb/ beside the repository (SNABB_VENDOR_DIR): the vendored upstream release
#   3. a git clone of $SNABB_GIT_URL at tag $SNABB_VERSION (machines that reach GitHub)
# A tarball's SHA-256 must match SNABB_SHA256, else the SHA256SUMS beside it, else the hash pinned below for
# snabb-v2024.06.tar.xz; a tarball with no known hash is refused. The source is unpacked into a temporary folder
# outside the repository, every snabb/*.patch is applied, and `make -j$(nproc)` builds src/snabb.
#
# Results are cached in $SNABB_CACHE_DIR/<key>/ (default /var/cache/snabbvm-snabb), the key being a hash of the
# source's SHA-256 (or git commit) and the patches' contents, so a second run only copies the binary.
#
# Installs $SNABB_INSTALL_DIR/snabb (default /usr/local/bin) and, beside it, snabb.version: one line such as
# "v2024.06+snabbvm.0123456789ab", the release tag plus the first 12 hex digits of the SHA-256 of snabb/*.patch
# concatenated in name order. The launcher reports it in `snabbvm status --json` (snabb.version, snabb.patched);
# the Dockerfile computes the same string.
#
# Needs: gcc make libc6-dev xz-utils patch (scripts/install-test-deps.sh), and git or curl for those sources.
set -euo pipefail
export LC_ALL=C
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

SNABB_VERSION=${SNABB_VERSION:-v2024.06}
SNABB_GIT_URL=${SNABB_GIT_URL:-https://github.com/snabbco/snabb}
SNABB_VENDOR_DIR=${SNABB_VENDOR_DIR:-$repo/../shared/vendor/snabb}
SNABB_CACHE_DIR=${SNABB_CACHE_DIR:-/var/cache/snabbvm-snabb}
SNABB_INSTALL_DIR=${SNABB_INSTALL_DIR:-/usr/local/bin}
# the upstream v2024.06 release as vendored (../shared/vendor/snabb/SHA256SUMS)
PINNED_NAME=snabb-v2024.06.tar.xz
PINNED_SHA256=5eaf75a953d240d96f104781528c44ba9034e66f9f746c072b016a6c608c7582

log() { echo "build-snabb: $*" >&2; }
die() { log "error: $*"; exit 1; }

patches=("$repo"/snabb/*.patch)
[[ -f ${patches[0]} ]] || die "no snabb/*.patch in $repo; Snabb $SNABB_VERSION cannot serve QEMU >= 7.1 without it"
patch_hash=$(cat "${patches[@]}" | sha256sum | cut -c1-64)
version="$SNABB_VERSION+snabbvm.${patch_hash:0:12}"

if [[ ${1:-} == --print-version ]]; then
  echo "$version"
  exit 0
fi

started=$(date +%s)
build=$(mktemp -d "${TMPDIR:-/tmp}/snabbvm-snabb-build.XXXXXX")
trap 'rm -rf "$build"' EXIT

# The expected SHA-256 of a tarball: SNABB_SHA256, the SHA256SUMS beside it, or the pinned release's.
expected_sha256() {
  local file=$1 name=$2 sums
  if [[ -n ${SNABB_SHA256:-} ]]; then echo "$SNABB_SHA256"; return; fi
  sums=$(dirname "$file")/SHA256SUMS
  if [[ -f $sums ]] && awk -v n="$name" '$2 == n || $2 == "*" n { found = 1 } END { exit !found }' "$sums"; then
    awk -v n="$name" '$2 == n || $2 == "*" n { print $1; exit }' "$sums"
    return
  fi
  [[ $name == "$PINNED_NAME" ]] && { echo "$PINNED_SHA256"; return; }
  die "no SHA-256 known for $name: set SNABB_SHA256, or put a SHA256SUMS beside it"
}

# Checks a tarball and records what it is: sets source_id and tarball.
use_tarball() {
  local file=$1 name=${2:-$(basename "$1")} want have
  want=$(expected_sha256 "$file" "$name")
  have=$(sha256sum <"$file" | cut -c1-64)
  [[ $have == "$want" ]] || die "$file: SHA-256 is $have, expected $want"
  log "source: $file (SHA-256 $have, checked)"
  tarball=$file
  source_id="tarball $have"
}

tarball=
source_id=
arg=${1:-}
if [[ -n $arg ]]; then
  case $arg in
    http://* | https://*)
      log "downloading $arg"
      curl -fsSL --retry 3 -o "$build/source.tar" "$arg" || die "cannot download $arg"
      use_tarball "$build/source.tar" "$(basename "${arg%%\?*}")" ;;
    *)
      if [[ -d $arg ]]; then
        [[ -f $arg/snabb-$SNABB_VERSION.tar.xz ]] || die "$arg has no snabb-$SNABB_VERSION.tar.xz"
        use_tarball "$arg/snabb-$SNABB_VERSION.tar.xz"
      elif [[ -f $arg ]]; then
        use_tarball "$arg"
      else
        die "$arg is neither a tarball, a folder with snabb-$SNABB_VERSION.tar.xz, nor an http(s) URL"
      fi ;;
  esac
elif [[ -f $SNABB_VENDOR_DIR/snabb-$SNABB_VERSION.tar.xz ]]; then
  use_tarball "$(cd "$SNABB_VENDOR_DIR" && pwd)/snabb-$SNABB_VERSION.tar.xz"
else
  command -v git >/dev/null || die "no source: no $SNABB_VENDOR_DIR/snabb-$SNABB_VERSION.tar.xz and no git to clone $SNABB_GIT_URL"
  log "source: git clone $SNABB_GIT_URL at $SNABB_VERSION (no $SNABB_VENDOR_DIR/snabb-$SNABB_VERSION.tar.xz)"
  git clone --quiet --depth 1 --branch "$SNABB_VERSION" "$SNABB_GIT_URL" "$build/snabb" || die "cannot clone $SNABB_GIT_URL at $SNABB_VERSION"
  source_id="git $(git -C "$build/snabb" rev-parse HEAD)"
fi

key=$(printf '%s\n%s\n' "$source_id" "$patch_hash" | sha256sum | cut -c1-16)
cached=$SNABB_CACHE_DIR/$key
mkdir -p "$SNABB_CACHE_DIR"
exec 9>"$SNABB_CACHE_DIR/.lock"
flock 9 # one build at a time; a second caller then finds the first one's result

if [[ -x $cached/snabb && -f $cached/snabb.version ]]; then
  log "cached: $cached"
else
  if [[ -n $tarball ]]; then
    mkdir "$build/snabb"
    tar -xJf "$tarball" -C "$build/snabb" --strip-components=1 || die "cannot unpack $tarball"
  fi
  for p in "${patches[@]}"; do
    log "applying $(basename "$p")"
    patch -d "$build/snabb" -p1 --batch --forward --quiet <"$p" || die "$(basename "$p") does not apply to this Snabb source"
  done
  log "make -j$(nproc) (log: $build/make.log)"
  if ! make -C "$build/snabb" -j"$(nproc)" >"$build/make.log" 2>&1; then
    tail -n 40 "$build/make.log" >&2
    die "make failed"
  fi
  "$build/snabb/src/snabb" snsh -e 'os.exit(0)' || die "the built snabb does not run"
  rm -rf "$cached.tmp"
  mkdir -p "$cached.tmp"
  install -m 0755 "$build/snabb/src/snabb" "$cached.tmp/snabb"
  echo "$version" >"$cached.tmp/snabb.version"
  echo "$source_id" >"$cached.tmp/source"
  rm -rf "$cached"
  mv "$cached.tmp" "$cached"
  log "built $version into $cached"
fi

# install beside each other, each by an atomic rename, so a running test never sees half a binary
mkdir -p "$SNABB_INSTALL_DIR"
install -m 0755 "$cached/snabb" "$SNABB_INSTALL_DIR/.snabb.new"
mv -f "$SNABB_INSTALL_DIR/.snabb.new" "$SNABB_INSTALL_DIR/snabb"
install -m 0644 "$cached/snabb.version" "$SNABB_INSTALL_DIR/.snabb.version.new"
mv -f "$SNABB_INSTALL_DIR/.snabb.version.new" "$SNABB_INSTALL_DIR/snabb.version"
log "installed $SNABB_INSTALL_DIR/snabb ($version) in $(($(date +%s) - started)) s"
