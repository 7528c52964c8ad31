#!/usr/bin/env bash
# Runs one command inside the arm64 root (scripts/build-arm64-root.sh) under qemu user-mode
# emulation, in private mount and PID namespaces of its own: /proc, a read-only /sys, /dev, a
# tmpfs /tmp and the requested binds exist only in those namespaces, so they vanish with the last
# process in them, whatever ends it. The root itself is mounted read-only unless --writable.
#
# qemu 7.2 (Debian 12) passes the host's x86 /proc/cpuinfo through to the guest, and onnxruntime's
# CPU detection crashes on it when /sys is visible too; an arm64-style cpuinfo (one entry per host
# CPU) is bound over /proc/cpuinfo. qemu 8.1 and later answer /proc/cpuinfo themselves, before the
# file system is consulted, so the bind is harmless there.
#
# Usage: scripts/arm64-run.sh [--writable] [--bind SRC:DST[:ro]]... [--env NAME=VALUE]... \
#          ROOT -- COMMAND [ARGS...]
#   DST is a path inside ROOT that exists (a directory for a directory, a file for a file).
#   A shared lock on ROOT/../.lock is held while the command runs, so a rebuild waits for it;
#   --no-lock is for the build itself, which holds the lock exclusively.
# The command runs as root in the chroot with a clean environment: PATH, HOME=/tmp, LANG and the
# --env assignments. It runs at nice 10 (ARM64_NICE), and is killed when its caller dies.
set -euo pipefail
export PATH="/usr/local/sbin:/usr/sbin:/sbin:$PATH" # chroot, and mount for a user's shell

usage() {
  echo "usage: $0 [--writable] [--no-lock] [--bind SRC:DST[:ro]]... [--env NAME=VALUE]... ROOT -- COMMAND..." >&2
  exit 2
}

inside=0
if [ "${1:-}" = --inside ]; then
  inside=1
  shift
fi
original_args=("$@")
writable=0
lock=1
binds=()
envs=()
while [ $# -gt 0 ]; do
  case $1 in
  --writable) writable=1 ;;
  --no-lock) lock=0 ;;
  --bind) binds+=("${2:?--bind needs SRC:DST[:ro]}") && shift ;;
  --env) envs+=("${2:?--env needs NAME=VALUE}") && shift ;;
  --) usage ;;
  -*) usage ;;
  *) break ;;
  esac
  shift
done
[ $# -ge 3 ] && [ "$2" = -- ] || usage
root=$1
shift 2

if [ "$inside" = 0 ]; then
  [ -x "$root/usr/bin/python3" ] || {
    echo "arm64-run: $root is not a built arm64 root (scripts/build-arm64-root.sh)" >&2
    exit 2
  }
  if [ "$(id -u)" -ne 0 ]; then
    exec sudo -n "$0" "${original_args[@]}"
  fi
  if [ "$lock" = 1 ]; then
    exec 9<"$(dirname "$root")/.lock"
    flock -s 9
  fi
  exec nice -n "${ARM64_NICE:-10}" setpriv --pdeathsig KILL \
    unshare --mount --propagation private --pid --fork --kill-child=KILL -- \
    bash "$0" --inside "${original_args[@]}"
fi

# ---- inside the new namespaces (PID 1 of the PID namespace, before the chroot) ----------------
mount --bind "$root" "$root"
[ "$writable" = 1 ] || mount -o remount,bind,ro "$root"
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$root/sys"
mount --rbind /dev "$root/dev"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/tmp"
mount -t tmpfs -o mode=755,size=1m,nosuid,nodev tmpfs "$root/run"

cpus=$(getconf _NPROCESSORS_ONLN)
for ((cpu = 0; cpu < cpus; cpu++)); do
  # A Neoverse-N1 (Graviton2, Ampere Altra) as the kernel describes one.
  printf 'processor\t: %d\nBogoMIPS\t: 50.00\n' "$cpu"
  printf 'Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs\n'
  printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x3\nCPU part\t: 0xd0c\nCPU revision\t: 1\n\n'
done >"$root/run/cpuinfo"
mount --bind "$root/run/cpuinfo" "$root/proc/cpuinfo"

for bind in "${binds[@]}"; do
  IFS=: read -r source target mode <<<"$bind"
  [ -e "$root$target" ] || {
    echo "arm64-run: $target does not exist inside the root" >&2
    exit 2
  }
  mount --bind "$source" "$root$target"
  [ "${mode:-}" != ro ] || mount -o remount,bind,ro "$root$target"
done

exec chroot "$root" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/tmp LANG=C.UTF-8 \
  "${envs[@]}" "$@"
