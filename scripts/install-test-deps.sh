#!/usr/bin/env bash
# Installs what the tests use: the real programs (QEMU, dnsmasq, iproute2, iptables, tmux, ISO writers, ...),
# the tools that build the fixture image, and the npm packages. Safe to run again: it skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  qemu-system-x86 qemu-utils ovmf       # the VM (ovmf: --boot uefi)
  dnsmasq-base iproute2 iptables nftables  # eth0 networking (nat, bridge)
  tmux socat                            # consoles
  xorriso genisoimage                   # cloud-init seed images
  python3 openssl                       # user-data checks vs the fixture's cloud-init; password hashes
  debootstrap fdisk grub-pc-bin e2fsprogs  # the fixture cloud image
  grub-efi-amd64-bin dosfstools mtools  # its UEFI-only variant (test/fixtures/build-uefi-image.sh)
  xz-utils zstd bzip2 gzip curl ca-certificates  # compressed images, downloads
  iperf3 procps
  gcc make libc6-dev patch              # Snabb, built by scripts/build-snabb.sh
  busybox                               # bench/: busybox httpd and friends; the PCI inner guest
  iputils-ping util-linux                # network tests: ping the VM, setpriv to drop CAP_NET_ADMIN
  docker.io jq                           # the image tests (scripts/setup-docker.sh starts dockerd)
  chromium                               # the web console test drives a real browser (playwright-core)
  tinyproxy                              # downloads through a proxy (CONNECT for https)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-test-deps: apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# the test command needs Node.js >= 20.10 (node --test --test-concurrency); Debian 12's own nodejs is 18
node -e 'const [major, minor] = process.versions.node.split(".").map(Number); process.exit(major > 20 || (major === 20 && minor >= 10) ? 0 : 1)' ||
  { echo "install-test-deps: the tests need Node.js >= 20.10, found $(node --version 2>/dev/null || echo none); install Node 20 or later (e.g. from NodeSource)" >&2; exit 1; }
if [[ -f package-lock.json ]]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
