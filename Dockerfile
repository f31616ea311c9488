# snabbvm: a VM in one `docker run`. See README.md and docs/docker.md.
#
#   docker build -t snabbvm .
#   docker run --name vm1 --rm --privileged -i -t -v $PWD:/u snabbvm -u user_data.txt debian-12.qcow2 0000:05:00.0
#
# Build arguments:
#   BASE_IMAGE     the Debian 13 image every stage starts from (default debian:trixie-slim; without Docker Hub,
#                  scripts/build-base-image.sh makes an equivalent one with debootstrap)
#   SNABB_SOURCE   git   (default) build Snabb SNABB_VERSION from SNABB_GIT_URL with snabb/*.patch applied
#                  local use the binary at docker/snabb-local/snabb (a build machine that cannot reach GitHub),
#                        e.g. the one scripts/build-snabb.sh built from the vendored release, with its snabb.version
#                  none  no Snabb: VMs without PCI ports work, a PCI port fails with a clear message
#   SNABB_GIT_URL, SNABB_VERSION   where Snabb comes from (v2024.06 is the last release with snabbnfv)
#   (each build of Snabb writes snabb.version beside the binary, as scripts/build-snabb.sh does: the tag, then
#   +snabbvm. and the first 12 hex digits of the SHA-256 of snabb/*.patch concatenated in name order)
#   SNABB_BUILD_VERSION   the Snabb build for the label io.snabbvm.snabb.version, as
#                  `bash scripts/build-snabb.sh --print-version` prints it; the build fails if the image's Snabb
#                  (/usr/local/bin/snabb.version) is another one
#
# Works with BuildKit and with the classic builder: no stage is skipped by name, so each step decides by its
# argument what to do.

ARG BASE_IMAGE=debian:trixie-slim

# --- Snabb ----------------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS snabb
ARG SNABB_SOURCE=git
ARG SNABB_GIT_URL=https://github.com/snabbco/snabb
ARG SNABB_VERSION=v2024.06
COPY docker/snabb-local/ snabb/*.patch /build/inputs/
COPY docker/build-ca/ /usr/local/share/ca-certificates/
RUN set -eu; mkdir -p /out; \
    case "$SNABB_SOURCE" in \
      git) \
        set -- /build/inputs/*.patch; \
        [ -f "$1" ] || { echo "SNABB_SOURCE=git: no snabb/*.patch in the build context; Snabb $SNABB_VERSION cannot serve QEMU >= 7.1 without it" >&2; exit 1; }; \
        apt-get update -qq; \
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ca-certificates git make gcc libc6-dev >/dev/null; \
        update-ca-certificates >/dev/null; \
        git clone --quiet --depth 1 --branch "$SNABB_VERSION" "$SNABB_GIT_URL" /build/snabb; \
        cd /build/snabb; \
        for p in "$@"; do echo "applying $(basename "$p")"; git apply --verbose "$p"; done; \
        make -j"$(nproc)" >/build/make.log 2>&1 || { tail -n 40 /build/make.log >&2; exit 1; }; \
        install -m 0755 src/snabb /out/snabb; \
        echo "$SNABB_VERSION+snabbvm.$(LC_ALL=C; cat "$@" | sha256sum | cut -c1-12)" >/out/snabb.version ;; \
      local) \
        [ -f /build/inputs/snabb ] || { echo "SNABB_SOURCE=local: put a snabb binary at docker/snabb-local/snabb in the build context" >&2; exit 1; }; \
        install -m 0755 /build/inputs/snabb /out/snabb; \
        if [ -f /build/inputs/snabb.version ]; then install -m 0644 /build/inputs/snabb.version /out/snabb.version; fi ;; \
      none) \
        echo "SNABB_SOURCE=none: this image has no Snabb; PCI ports will fail with a clear message" ;; \
      *) \
        echo "SNABB_SOURCE must be git, local or none, not '$SNABB_SOURCE'" >&2; exit 1 ;; \
    esac

# --- the launcher: compiled TypeScript and its production dependencies only ----------------------------------
FROM ${BASE_IMAGE} AS launcher
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm ca-certificates >/dev/null \
 && rm -rf /var/lib/apt/lists/*
# extra CAs of a build machine behind a TLS-intercepting proxy (docker/build-ca/README.md)
COPY docker/build-ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates >/dev/null
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
WORKDIR /build
COPY package.json package-lock.json tsconfig.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY src/ src/
# the web console's page; its browser libraries (noVNC, xterm.js) are npm dependencies, served from node_modules
COPY web/ web/
RUN npx tsc -p . \
 && mkdir -p /opt/snabbvm \
 && cp -r package.json package-lock.json web /opt/snabbvm/ \
 && cd dist && find src -name '*.js' ! -name '*.test.js' -exec install -D -m 0644 {} /opt/snabbvm/dist/{} \; \
 && chmod 0755 /opt/snabbvm/dist/src/cli/main.js \
 && cd /opt/snabbvm && npm ci --omit=dev --no-audit --no-fund --loglevel=error \
 && rm -rf /root/.npm

# --- the runtime ----------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE}
# Keep out of the image what a headless x86_64 VM never uses: the i386 and microvm QEMU binaries, QEMU's tools
# other than qemu-img, and the firmware of other machines and NICs. Kept: SeaBIOS, the std VGA BIOS, the
# virtio-net and e1000 boot ROMs, the en-us keymap (VNC won't start without it), and of OVMF (--boot uefi) only
# the plain 4 MiB code and variables (no Secure Boot builds). Node's corepack and type declarations go too.
RUN printf '%s\n' \
      'path-exclude /usr/bin/qemu-system-i386' \
      'path-exclude /usr/bin/qemu-system-x86_64-microvm' \
      'path-exclude /usr/bin/qemu-storage-daemon' \
      'path-exclude /usr/bin/qemu-io' \
      'path-exclude /usr/bin/qemu-nbd' \
      'path-exclude /usr/share/qemu/*' \
      'path-include /usr/share/qemu/bios-256k.bin' \
      'path-include /usr/share/qemu/vgabios-stdvga.bin' \
      'path-include /usr/share/qemu/vgabios-virtio.bin' \
      'path-include /usr/share/qemu/efi-virtio.rom' \
      'path-include /usr/share/qemu/efi-e1000.rom' \
      'path-include /usr/share/qemu/kvmvapic.bin' \
      'path-include /usr/share/qemu/linuxboot_dma.bin' \
      'path-include /usr/share/qemu/keymaps' \
      'path-include /usr/share/qemu/keymaps/en-us' \
      'path-exclude /usr/share/seabios/*' \
      'path-include /usr/share/seabios/bios-256k.bin' \
      'path-include /usr/share/seabios/vgabios-stdvga.bin' \
      'path-include /usr/share/seabios/vgabios-virtio.bin' \
      'path-exclude /usr/lib/ipxe/*' \
      'path-include /usr/lib/ipxe/qemu' \
      'path-include /usr/lib/ipxe/qemu/efi-virtio.rom' \
      'path-include /usr/lib/ipxe/qemu/efi-e1000.rom' \
      'path-exclude /usr/share/OVMF/*' \
      'path-include /usr/share/OVMF/OVMF_CODE_4M.fd' \
      'path-include /usr/share/OVMF/OVMF_VARS_4M.fd' \
      'path-exclude /usr/share/ovmf/*' \
      'path-exclude /usr/share/nodejs/corepack/*' \
      'path-exclude /usr/share/nodejs/@types/*' \
      'path-exclude /usr/share/doc/*' \
      'path-include /usr/share/doc/*/copyright' \
      'path-exclude /usr/share/man/*' \
      'path-exclude /usr/share/locale/*' \
      'path-exclude /usr/share/lintian/*' \
      >/etc/dpkg/dpkg.cfg.d/snabbvm-slim \
 && apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      qemu-system-x86 qemu-utils ovmf virtiofsd \
      nodejs tini \
      dnsmasq-base iproute2 nftables \
      tmux \
      xorriso \
      numactl \
      ca-certificates xz-utils zstd bzip2 \
      >/dev/null \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/* /usr/share/qemu/firmware
# (the build arguments are declared only now, so that changing them does not redo the package layer above)
ARG SNABB_SOURCE=git
ARG SNABB_VERSION=v2024.06
ARG SNABB_BUILD_VERSION=
COPY --from=snabb /out/ /usr/local/bin/
COPY --from=launcher /opt/snabbvm/ /opt/snabbvm/
# checks that each program runs; snabb leaves its shared memory (10 MB) in /run/snabb, which the image must not keep
RUN ln -s /opt/snabbvm/dist/src/cli/main.js /usr/local/bin/snabbvm \
 && mkdir -p /u /var/cache/snabbvm /var/lib/snabbvm \
 && snabbvm --version >/dev/null \
 && qemu-system-x86_64 -version >/dev/null \
 && test -f /usr/share/OVMF/OVMF_CODE_4M.fd && test -f /usr/share/OVMF/OVMF_VARS_4M.fd \
 && /usr/libexec/virtiofsd --version >/dev/null \
 && if [ "$SNABB_SOURCE" = none ]; then ! command -v snabb; else snabb --help >/dev/null && rm -rf /run/snabb; fi \
 && built=$(cat /usr/local/bin/snabb.version 2>/dev/null || echo unknown) \
 && if [ -n "$SNABB_BUILD_VERSION" ] && [ "$SNABB_BUILD_VERSION" != "$built" ]; then \
      echo "SNABB_BUILD_VERSION=$SNABB_BUILD_VERSION, but the image's Snabb is $built" >&2; exit 1; fi

# the source, version and revision are build arguments: e.g. --build-arg SOURCE_URL=$(git remote get-url origin)
# --build-arg REVISION=$(git rev-parse HEAD); VERSION is package.json's
ARG BASE_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE_URL=unknown
LABEL org.opencontainers.image.title="snabbvm" \
      org.opencontainers.image.description="A VM in one docker run: QEMU with Snabb-driven 10GbE ports, cloud-init and consoles" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0 AND GPL-2.0-only" \
      org.opencontainers.image.base.name="${BASE_IMAGE}" \
      io.snabbvm.snabb="${SNABB_SOURCE} ${SNABB_VERSION}" \
      io.snabbvm.snabb.version="${SNABB_BUILD_VERSION}"

WORKDIR /u
VOLUME ["/var/cache/snabbvm"]
# 5901: VNC display :1.  8006: the web console.
EXPOSE 5901 8006
STOPSIGNAL SIGTERM
# `snabbvm status` asks the running launcher over its control socket and exits 0 only while the VM runs. The
# generous timeout is for busy hosts, where a TCG guest can leave Node little CPU to start in.
HEALTHCHECK --interval=30s --timeout=30s --start-period=120s --retries=3 CMD ["snabbvm", "status"]
# tini reaps the orphans that daemons leave behind and hands signals to the launcher, which shuts the guest
# down over ACPI on SIGTERM (docker stop).
ENTRYPOINT ["/usr/bin/tini", "--", "snabbvm"]
CMD ["--help"]
