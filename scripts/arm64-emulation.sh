#!/usr/bin/env bash
# Makes this x86-64 machine run arm64 (aarch64) programs by user-mode emulation: installs Debian's
# qemu-user-static, binfmt-support and debootstrap when missing, mounts binfmt_misc when it is not
# mounted, and enables the one qemu-aarch64 handler (with the fix-binary flag, so it also works
# inside a chroot or a container). Nothing else is registered. Idempotent and quiet when all is in
# place; exit status 0 means an aarch64 program runs here.
#
# With --check, installs and changes nothing: prints what is missing and how to add it.
# Undo: update-binfmts --disable qemu-aarch64 (the packages stay installed).
# Env: BINFMT_DIR, where binfmt_misc is (or is to be) mounted (/proc/sys/fs/binfmt_misc).
set -euo pipefail

BINFMT_DIR=${BINFMT_DIR:-/proc/sys/fs/binfmt_misc}
HANDLER=$BINFMT_DIR/qemu-aarch64
DEBIAN_KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
CHECK_ONLY=0
[ "${1:-}" = --check ] && CHECK_ONLY=1

log() { echo "arm64-emulation: $*" >&2; }

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

handler_ready() {
  [ -r "$HANDLER" ] && grep -qx enabled "$HANDLER" && grep -q '^flags: .*F' "$HANDLER"
}

missing_packages() {
  local missing=()
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  [ -f "$DEBIAN_KEYRING" ] || missing+=(debian-archive-keyring)
  command -v unshare >/dev/null 2>&1 || missing+=(util-linux)
  if ! handler_ready; then
    # A handler registered some other way (systemd-binfmt, a newer qemu) needs no package.
    [ -f /usr/share/binfmts/qemu-aarch64 ] || missing+=(qemu-user-static)
    command -v update-binfmts >/dev/null 2>&1 || missing+=(binfmt-support)
  fi
  printf '%s\n' "${missing[@]}" | sort -u | sed '/^$/d'
}

if [ "$CHECK_ONLY" = 1 ]; then
  mapfile -t missing < <(missing_packages)
  problems=0
  if [ ${#missing[@]} -gt 0 ]; then
    log "missing Debian packages: ${missing[*]} (apt-get install ${missing[*]})"
    problems=1
  fi
  if ! handler_ready; then
    if ! grep -q " $BINFMT_DIR " /proc/mounts; then
      log "binfmt_misc is not mounted: mount -t binfmt_misc binfmt_misc $BINFMT_DIR"
    fi
    log "no enabled qemu-aarch64 handler with the fix-binary flag: update-binfmts --enable qemu-aarch64"
    problems=1
  fi
  [ "$problems" = 0 ] && log "ready: $(head -n2 "$HANDLER" | tail -n1)"
  [ "$problems" = 1 ] && log "or run: make arm64-emulation (as root, or with sudo)"
  exit "$problems"
fi

mapfile -t missing < <(missing_packages)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  started=$SECONDS
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
  log "installed in $((SECONDS - started))s"
fi

if handler_ready; then
  exit 0
fi
if ! grep -q " $BINFMT_DIR " /proc/mounts; then
  log "mounting binfmt_misc on $BINFMT_DIR"
  $SUDO mount -t binfmt_misc binfmt_misc "$BINFMT_DIR" || {
    log "cannot mount binfmt_misc (a container without privileges?): arm64 emulation is not possible here"
    exit 1
  }
fi
# Only the aarch64 handler: the packages describe some thirty others, which stay disabled.
$SUDO update-binfmts --enable qemu-aarch64
if ! handler_ready; then
  log "qemu-aarch64 is registered without the fix-binary (F) flag; see $HANDLER"
  exit 1
fi
log "enabled: $(head -n2 "$HANDLER" | tail -n1) ($(grep '^flags' "$HANDLER"))"
