#!/usr/bin/env bash
# Installs the Debian packages the test suite drives for real, only when a tool is missing.
# Installing needs root (apt-get): the script says so before it starts, uses sudo when not root,
# and when neither works says what to run instead. With every tool present it needs nothing.
set -euo pipefail

declare -A package_of=(
  [promtool]=prometheus
  [prometheus]=prometheus
  [wrk]=wrk
  [hey]=hey
  [h2load]=nghttp2-client
  # tests/integration/test_grpc_js.py: @grpc/grpc-js, installed by npm ci from tests/interop.
  [node]=nodejs
  [npm]=npm
)

missing_tools=()
for tool in "${!package_of[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing_tools+=("$tool")
done
# PostgreSQL (the closed-loop tests start one): Debian keeps initdb off PATH, in its version's bin.
if ! command -v initdb >/dev/null 2>&1 && ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  package_of[initdb]=postgresql
  missing_tools+=(initdb)
fi
[ ${#missing_tools[@]} -eq 0 ] && exit 0

mapfile -t tools < <(printf '%s\n' "${missing_tools[@]}" | sort -u)
mapfile -t packages < <(for tool in "${tools[@]}"; do echo "${package_of[$tool]}"; done | sort -u)
need="the tests need ${tools[*]} (Debian packages: ${packages[*]}); installing them with apt-get needs root"

sudo=""
if [ "$(id -u)" -eq 0 ]; then
  echo "system-deps: $need: running apt-get as root"
elif command -v sudo >/dev/null 2>&1; then
  sudo="sudo"
  echo "system-deps: $need: running sudo apt-get (it may ask for your password)"
else
  echo "error: $need, and this user is not root and has no sudo; run \`make system-deps\` as root" \
    "once (or install ${packages[*]} yourself); nothing was installed" >&2
  exit 1
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
echo "system-deps: installed ${packages[*]}"
