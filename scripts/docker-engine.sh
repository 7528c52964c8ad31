#!/usr/bin/env bash
# Makes a Docker engine answer on this machine: installs Debian's docker.io and debootstrap when
# missing and starts dockerd when it is not running (overlay2, falling back to vfs). Where an
# engine already runs (a CI runner), it only adds debootstrap and the Debian keyring.
# With --compose, also installs Debian's docker-compose when no Compose command works.
# Idempotent and quiet when the engine already answers. Exit status 0 means `docker info` works.
# Installing and starting need root: the script says so before doing either, uses sudo when not
# root, and fails at once (saying what to run) when it has neither; an engine that already answers
# needs no root. With --check it only reports, in one line, what the image tests will do.
set -euo pipefail

LOG=${DOCKERD_LOG:-/tmp/dockerd.log}
WAIT_SECONDS=${DOCKERD_WAIT_SECONDS:-60}
DEBIAN_KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

WITH_COMPOSE=0
CHECK=0
[ "${1:-}" = --compose ] && WITH_COMPOSE=1
[ "${1:-}" = --check ] && CHECK=1

log() { echo "docker-engine: $*" >&2; }

engine_answers() { docker info >/dev/null 2>&1; }

# The engine runs, but its socket refuses this user (not in the docker group).
engine_refuses_us() {
  local out
  out=$(docker info 2>&1 || true)
  [[ $out == *"permission denied"* ]]
}

# Root, or sudo that will not stop to ask (a CI runner's), or that may ask (a terminal).
sudo=""
can_be_root() {
  if [ "$(id -u)" -eq 0 ]; then return 0; fi
  command -v sudo >/dev/null 2>&1 || return 1
  if sudo -n true 2>/dev/null || [ -t 0 ]; then
    sudo="sudo"
    return 0
  fi
  return 1
}

if [ "$CHECK" = 1 ]; then
  if engine_answers; then
    echo "docker: the engine answers; the image tests will use it"
  elif engine_refuses_us; then
    echo "docker: the engine runs but this user may not use it (add it to the docker group);" \
      "the image tests will be skipped"
  elif can_be_root; then
    echo "docker: no engine answers; the image tests will install Debian's docker.io if" \
      "missing and start dockerd, which needs root (${sudo:-running as root})"
  else
    echo "docker: no engine answers and starting one needs root; the image tests will be" \
      "skipped (IMAGE_TESTS_REQUIRE_DOCKER=1 fails them): run \`sudo make docker-engine\` first"
  fi
  exit 0
fi

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
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  log "installing Debian packages with apt-get, which needs root (${sudo:-running as root}): ${missing[*]}"
  local started=$SECONDS
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
  log "installed in $((SECONDS - started))s"
}

# Starts dockerd detached from this shell (it must outlive `make`), then waits for it to answer.
start_dockerd() {
  local driver=$1 started=$SECONDS
  log "starting dockerd with storage driver $driver, which needs root (${sudo:-running as root}; log: $LOG)"
  echo "=== $(date -Is) dockerd --storage-driver $driver" >>"$LOG"
  # shellcheck disable=SC2086  # $sudo is empty or one word
  setsid $sudo dockerd --storage-driver "$driver" >>"$LOG" 2>&1 </dev/null &
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

if engine_answers; then
  tools_present && exit 0
  # debootstrap only builds the local base image (make base-image): without root, leave it be.
  if can_be_root; then
    install_packages
  else
    log "debootstrap or the Debian keyring is missing; building the local base image will need root"
  fi
  exit 0
fi
if engine_refuses_us; then
  log "the Docker engine runs but this user may not use it: add it to the docker group"
  exit 1
fi
if ! can_be_root; then
  log "no Docker engine answers, and installing or starting one needs root:" \
    "run \`sudo make docker-engine\` (or start Docker yourself)"
  exit 1
fi
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
