#!/usr/bin/env bash
# Builds the arm64 Debian root that `make verify-arm64` runs the server in, under qemu user-mode
# emulation (scripts/arm64-emulation.sh), and installs a locked runtime set into it:
#
#   1. debootstrap --arch=arm64 minbase bookworm with python3 and python3-venv (3 to 6 minutes:
#      every package's configuration runs emulated), once per machine and recipe;
#   2. a virtual environment per requirements file (exported from uv.lock), installed by pip inside
#      the root from wheels only, every file checked against the lock's hashes (1 to 2 minutes);
#   3. an import of the runtime set inside the root, which also writes its bytecode.
#
# Both steps are cached like the Docker base image, each marked complete only once it is: the root
# by a hash of its recipe, the environment by a hash of the requirements file and its own recipe
# (the variables below). Other recipes' roots are removed when no one is using them.
#
# Usage: scripts/build-arm64-root.sh REQUIREMENTS_FILE
# Prints ROOT=<root directory> and PYTHON=<interpreter inside the root> on stdout.
# Env:   ARM64_ROOT_DIR (/var/tmp/mlops-arm64), DEBIAN_MIRROR (debootstrap's default),
#        HOST_CA_BUNDLE (/etc/ssl/certs/ca-certificates.crt: what pip inside the root trusts),
#        REBUILD_ARM64_ROOT=1 forces both steps.
set -euo pipefail
shopt -s nullglob
export PATH="/usr/local/sbin:/usr/sbin:/sbin:$PATH" # debootstrap, chroot

REQUIREMENTS=${1:?usage: $0 REQUIREMENTS_FILE}
# The root's recipe: a change to any of these builds a new root. ROOT_FORMAT counts the changes
# to how the root is made that the other values do not show.
SUITE=bookworm
PACKAGES=python3,python3-venv
MOUNT_POINTS=(/repo /work /opt/runtime /etc/ssl)
ROOT_FORMAT=1
# The environment's recipe, besides the requirements: count the changes to how it is installed.
RUNTIME_FORMAT=1
BASE_DIR=${ARM64_ROOT_DIR:-/var/tmp/mlops-arm64}
HOST_CA_BUNDLE=${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
HERE=$(cd "$(dirname "$0")" && pwd)
RUN="$HERE/arm64-run.sh"

log() { echo "arm64-root: $*" >&2; }

# A step's completion mark holds how long it took, when, and how busy the machine was.
mark_done() {
  printf '{"seconds": %d, "built": "%s", "load_average": %s}\n' "$2" \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(cut -d' ' -f1 /proc/loadavg)" |
    "${SUDO[@]}" tee "$1" >/dev/null
}

SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo -n)

"$HERE/arm64-emulation.sh" --check || exit 1
[ -r "$REQUIREMENTS" ] || {
  log "no requirements file $REQUIREMENTS"
  exit 2
}

recipe=$(echo "$SUITE $PACKAGES ${MOUNT_POINTS[*]} $ROOT_FORMAT" | sha256sum | cut -c1-16)
runtime=$(cat "$REQUIREMENTS" <(echo "$recipe $RUNTIME_FORMAT") | sha256sum | cut -c1-16)
dir="$BASE_DIR/$recipe"
root="$dir/rootfs"
venv="/opt/runtime/$runtime"

"${SUDO[@]}" mkdir -p "$dir"
"${SUDO[@]}" touch "$dir/.lock"
if [ "${REBUILD_ARM64_ROOT:-0}" = 1 ]; then
  "${SUDO[@]}" rm -f "$dir/rootfs.done" "$dir/runtime-$runtime.done"
fi

if [ -f "$dir/rootfs.done" ] && [ -f "$dir/runtime-$runtime.done" ]; then
  "${SUDO[@]}" touch "$dir/runtime-$runtime.done" # last used: see the pruning below
  log "up to date: $root (recipe $recipe), $venv"
  echo "ROOT=$root"
  echo "PYTHON=$venv/bin/python"
  exit 0
fi

# From here on, exclusive: a second build waits, and so does anything that would run in the root.
exec 9<"$dir/.lock"
flock -n -x 9 || {
  log "waiting for another build or check to finish with $dir"
  flock -x 9
}

started=$SECONDS
if [ ! -f "$dir/rootfs.done" ]; then
  command -v debootstrap >/dev/null || {
    log "debootstrap is missing: make arm64-emulation"
    exit 1
  }
  "${SUDO[@]}" rm -rf "$root" "$dir"/runtime-*.done
  log "debootstrap --arch=arm64 $SUITE (minbase + $PACKAGES) into $root"
  # In a private mount namespace: the mounts debootstrap makes in the root cannot outlive it.
  # shellcheck disable=SC2086  # an empty mirror means debootstrap's default
  if ! "${SUDO[@]}" nice -n "${ARM64_NICE:-10}" unshare --mount --propagation private \
    debootstrap --arch=arm64 --variant=minbase --include="$PACKAGES" \
    --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
    "$SUITE" "$root" ${DEBIAN_MIRROR:-} >"$dir/debootstrap.log" 2>&1; then
    tail -n 30 "$dir/debootstrap.log" >&2
    log "debootstrap failed; the whole log is $dir/debootstrap.log"
    exit 1
  fi
  # Mount points for scripts/arm64-run.sh --bind (the root is read-only when checks run).
  for point in "${MOUNT_POINTS[@]}"; do "${SUDO[@]}" mkdir -p "$root$point"; done
  "${SUDO[@]}" touch "$root/etc/resolv.conf" "$root/etc/ssl/host-ca.pem"
  mark_done "$dir/rootfs.done" $((SECONDS - started))
  log "root built in $((SECONDS - started))s"
fi

if [ ! -f "$dir/runtime-$runtime.done" ]; then
  step=$SECONDS
  inputs=$(mktemp -d)
  trap 'rm -rf "$inputs"' EXIT
  cp "$REQUIREMENTS" "$inputs/requirements.txt"
  chmod -R a+rX "$inputs"
  # Environments that never completed (the lock is ours: none is being built now) go, and of
  # the completed ones (150 MB each) the two used last stay beside the new one, for other
  # checkouts' locks.
  mapfile -t kept < <(find "$dir" -maxdepth 1 -name 'runtime-*.done' -printf '%T@ %f\n' |
    sort -rn | head -n 2 | cut -d' ' -f2)
  for other in "$root"/opt/runtime/*/; do
    other=$(basename "$other")
    if [[ " ${kept[*]} " != *" runtime-$other.done "* ]]; then
      "${SUDO[@]}" rm -rf "${root:?}/opt/runtime/$other" "$dir/runtime-$other.done"
    fi
  done
  log "installing $(grep -c '==' "$REQUIREMENTS") locked packages into $venv (wheels only, hashes required)"
  net=(--bind "$HOST_CA_BUNDLE:/etc/ssl/host-ca.pem:ro" --bind "$inputs:/work:ro")
  [ -f /etc/resolv.conf ] && net+=(--bind "$(readlink -f /etc/resolv.conf):/etc/resolv.conf:ro")
  pip_env=()
  for name in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_DEFAULT_TIMEOUT; do
    [ -z "${!name:-}" ] || pip_env+=(--env "$name=${!name}")
  done
  "$RUN" --writable --no-lock "${net[@]}" "${pip_env[@]}" "$root" -- \
    /usr/bin/python3 -m venv --without-pip "$venv"
  # pip from the wheel Debian ships for ensurepip: no pip (and no setuptools) in the environment.
  "$RUN" --writable --no-lock "${net[@]}" "${pip_env[@]}" "$root" -- /bin/sh -c \
    "set -- /usr/share/python-wheels/pip-*.whl && $venv/bin/python \"\$1/pip\" install --quiet \
      --disable-pip-version-check --no-cache-dir --no-compile --cert /etc/ssl/host-ca.pem \
      --require-hashes --only-binary=:all: --requirement /work/requirements.txt" || {
    log "pip could not install the locked runtime set inside the arm64 root"
    exit 1
  }
  log "importing the runtime set inside the root (this also writes its bytecode)"
  "$RUN" --writable --no-lock "$root" -- "$venv/bin/python" -c \
    "import httptools, numpy, onnxruntime, orjson, prometheus_client, starlette, uvicorn, uvloop"
  mark_done "$dir/runtime-$runtime.done" $((SECONDS - step))
  log "runtime set installed in $((SECONDS - step))s"
fi

# Roots of other recipes that nothing is using: gone.
for other in "$BASE_DIR"/*/; do
  other=${other%/}
  if [ "$other" != "$dir" ] && [ -f "$other/.lock" ] &&
    flock -n -x "$other/.lock" "${SUDO[@]}" rm -rf "$other"; then
    log "removed the unused root of another recipe: $other"
  fi
done

log "ready in $((SECONDS - started))s: $root"
echo "ROOT=$root"
echo "PYTHON=$venv/bin/python"
