#!/usr/bin/env bash
# Makes a Docker engine answer on this machine: installs Debian's docker.io and debootstrap when
# missing and starts dockerd when it is not running (overlay2, falling back to vfs). Where an
# engine already runs (a CI runner), it only adds debootstrap and the Debian keyring.
# With --compose, also installs Debian's docker-compose when no Compose command works.
# Idempotent and quiet when the engine already answers. Exit status 0 means `docker info` works.
set -euo pipefail

LOG=${DOCKERD_LOG:-/tmp/dockerd.log}
WAIT_SECONDS=${DOCKERD_WAIT_SECONDS:-60}
DEBIAN_KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

WITH_COMPOSE=0
[ "${1:-}" = --compose ] && WITH_COMPOSE=1

log() { echo "docker-engine: $*" >&2; }

engine_answers() { docker info >/dev/null 2>&1; }

install_packages() {
  local missing=()
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  command -v docker >/dev/null 2>&1 || missing+=(docker.io)
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  # Present on Debian; on Ubuntu (e.g. CI runners) debootstrap needs it to verify bookworm.
  [ -f "$DEBIAN_KEYRING" ] || missing+=(debian-archive-keyring)
  if [ "$WITH_COMPOSE" = 1 ] && ! docker compose version >/dev/null 2>&1 &&
    ! command -v docker-compose >/dev/null 2>&1; then
    missing+=(docker-compose)
  fi
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  log "installing Debian packages: ${missing[*]}"
  local started=$SECONDS
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
  log "installed in $((SECONDS - started))s"
}

# Starts dockerd detached from this shell (it must outlive `make`), then waits for it to answer.
start_dockerd() {
  local driver=$1 started=$SECONDS
  log "starting dockerd with storage driver $driver (log: $LOG)"
  echo "=== $(date -Is) dockerd --storage-driver $driver" >>"$LOG"
  setsid dockerd --storage-driver "$driver" >>"$LOG" 2>&1 </dev/null &
  local pid=$!
  while ((SECONDS - started < WAIT_SECONDS)); do
    if engine_answers; then
      log "dockerd ($driver, pid $pid) answered after $((SECONDS - started))s"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
  log "dockerd with $driver did not come up; last lines of $LOG:"
  tail -n 15 "$LOG" >&2 || true
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -f /var/run/docker.pid
  return 1
}

tools_present() {
  [ "$WITH_COMPOSE" = 0 ] && command -v debootstrap >/dev/null 2>&1 && [ -f "$DEBIAN_KEYRING" ]
}

tools_present && engine_answers && exit 0
install_packages
engine_answers && exit 0
if pgrep -x dockerd >/dev/null 2>&1; then
  log "dockerd is running but does not answer yet; waiting"
  for _ in $(seq "$WAIT_SECONDS"); do engine_answers && exit 0; sleep 1; done
  log "dockerd is running but never answered; see $LOG"
  exit 1
fi
start_dockerd overlay2 || start_dockerd vfs || {
  log "no storage driver worked: Docker cannot be started on this machine"
  exit 1
}
