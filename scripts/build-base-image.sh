#!/usr/bin/env bash
# Builds the local base image that `make image` builds on when no image can be pulled:
# a minimal Debian bookworm with Debian's python3 and python3-venv, trusting this machine's extra
# CA certificates (so pip inside `docker build` works behind a TLS-intercepting proxy), slimmed,
# and imported into the local Docker engine. Built once per machine: skipped when the tag exists
# with the same recipe hash. For building and testing here only; the published image uses the
# official python slim base.
#
# Usage: scripts/build-base-image.sh [TAG]     (default mlops-platform/debian-python:bookworm)
# Env:   DEBIAN_MIRROR (default: debootstrap's own), EXTRA_CA_DIR (/usr/local/share/ca-certificates)
#        REBUILD_BASE=1 forces a rebuild.
set -euo pipefail

TAG=${1:-mlops-platform/debian-python:bookworm}
SUITE=bookworm
EXTRA_CA_DIR=${EXTRA_CA_DIR:-/usr/local/share/ca-certificates}
WORKDIR=${BASE_WORKDIR:-/var/tmp/mlops-base-image}
HERE=$(cd "$(dirname "$0")" && pwd)

log() { echo "base-image: $*" >&2; }

# The recipe hash covers this script and the certificates baked in: either changing rebuilds.
recipe_hash() {
  {
    cat "$HERE/build-base-image.sh"
    find "$EXTRA_CA_DIR" -type f -name '*.crt' 2>/dev/null | sort | xargs -r cat
  } | sha256sum | cut -c1-16
}

HASH=$(recipe_hash)
if [ "${REBUILD_BASE:-0}" != 1 ] &&
  [ "$(docker image inspect -f '{{ index .Config.Labels "org.mlops-platform.base-recipe" }}' \
    "$TAG" 2>/dev/null)" = "$HASH" ]; then
  log "$TAG is up to date (recipe $HASH)"
  exit 0
fi

command -v debootstrap >/dev/null || { log "debootstrap is missing (scripts/docker-engine.sh)"; exit 1; }
# debootstrap, chroot and the root-owned tree need root: sudo where we are not (CI runners).
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

step_started=$SECONDS
step() { log "$1 took $((SECONDS - step_started))s"; step_started=$SECONDS; }
total_started=$SECONDS

rootfs="$WORKDIR/rootfs"
$SUDO rm -rf "$rootfs"
mkdir -p "$WORKDIR"
$SUDO mkdir -p "$rootfs"
trap '$SUDO rm -rf "$rootfs"' EXIT

log "debootstrap $SUITE (minbase + python3, python3-venv, ca-certificates) into $rootfs"
# shellcheck disable=SC2086  # an empty mirror means debootstrap's default
$SUDO debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
  "$SUITE" "$rootfs" ${DEBIAN_MIRROR:-} >"$WORKDIR/debootstrap.log" 2>&1 || {
  tail -n 30 "$WORKDIR/debootstrap.log" >&2
  exit 1
}
step "debootstrap"

shopt -s nullglob
certs=("$EXTRA_CA_DIR"/*.crt)
if [ ${#certs[@]} -gt 0 ]; then
  $SUDO cp "${certs[@]}" "$rootfs/usr/local/share/ca-certificates/"
  $SUDO chroot "$rootfs" update-ca-certificates >/dev/null
  log "added ${#certs[@]} extra CA certificate(s) from $EXTRA_CA_DIR"
fi
step "CA certificates"

# Slim: nothing here is needed to run Python or to build an image on top of it
# (apt-get update restores the lists).
before=$($SUDO du -sm "$rootfs" | cut -f1)
$SUDO rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* \
  "$rootfs"/var/cache/debconf/*-old "$rootfs"/var/log/* \
  "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
  "$rootfs"/usr/share/lintian "$rootfs"/usr/share/linda "$rootfs"/usr/share/common-licenses \
  "$rootfs"/tmp/* "$rootfs"/var/tmp/*
$SUDO find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
# Keep dpkg from putting documentation and translations back when images built on this base
# install Debian packages.
$SUDO tee "$rootfs/etc/dpkg/dpkg.cfg.d/01-slim" >/dev/null <<'EOF'
path-exclude=/usr/share/doc/*
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
EOF
after=$($SUDO du -sm "$rootfs" | cut -f1)
step "slimming (${before} MB -> ${after} MB)"

$SUDO tar -C "$rootfs" --numeric-owner -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change "LABEL org.mlops-platform.base-recipe=$HASH" \
  --change 'CMD ["python3"]' \
  --message "debootstrap $SUITE minbase + python3 (recipe $HASH)" \
  - "$TAG" >/dev/null
step "docker import"

size=$(docker image inspect -f '{{ .Size }}' "$TAG")
log "built $TAG ($((size / 1000000)) MB, recipe $HASH) in $((SECONDS - total_started))s"
