#!/usr/bin/env bash
# Installs the Debian packages the test suite drives for real, only when a tool is missing.
set -euo pipefail

declare -A package_of=(
  [promtool]=prometheus
  [prometheus]=prometheus
  [wrk]=wrk
  [hey]=hey
  [h2load]=nghttp2-client
)

missing=()
for tool in "${!package_of[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${package_of[$tool]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

mapfile -t packages < <(printf '%s\n' "${missing[@]}" | sort -u)
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "Installing Debian packages: ${packages[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
