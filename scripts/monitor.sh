#!/usr/bin/env bash
# Runs Debian's Prometheus on loopback, scraping a local `make serve`, with the chart's alert rules
# loaded as they are (charts/platform/charts/monitoring/files/rules: the one source of truth).
#
# The scrape job is named `model-platform-api` and carries static `namespace` and `pod` labels, as
# the chart's scrape configs do, so the alert rules and the dashboards' queries work unchanged.
# tests/integration/test_monitoring_e2e.py runs this script too (with short intervals).
#
# Environment (all optional):
#   PORT              port of the API server to scrape on 127.0.0.1 (8000)
#   PROMETHEUS_PORT   port Prometheus listens on, on 127.0.0.1 (9090)
#   MONITOR_DIR       config and TSDB directory, git-ignored (.monitor)
#   MONITOR_INTERVAL  scrape and rule evaluation interval (5s)
#   MONITOR_RULES     rule files, space separated (the chart's)
#   MONITOR_NAMESPACE value of the namespace label (local)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
port=${PORT:-8000}
prometheus_port=${PROMETHEUS_PORT:-9090}
dir=${MONITOR_DIR:-$repo/.monitor}
interval=${MONITOR_INTERVAL:-5s}
namespace=${MONITOR_NAMESPACE:-local}
read -r -a rules <<<"${MONITOR_RULES:-$repo/charts/platform/charts/monitoring/files/rules/*.yaml}"

if ! command -v prometheus >/dev/null 2>&1; then
  echo "prometheus is not installed: run \`make system-deps\` (Debian package prometheus)" >&2
  exit 1
fi

mkdir -p "$dir/data"
dir=$(cd "$dir" && pwd)
config=$dir/prometheus.yml
{
  cat <<EOF
# Written by scripts/monitor.sh on every start; edit the script, not this file.
global:
  scrape_interval: $interval
  scrape_timeout: $interval
  evaluation_interval: $interval
rule_files:
EOF
  for rule in "${rules[@]}"; do
    echo "  - $(cd "$(dirname "$rule")" && pwd)/$(basename "$rule")"
  done
  cat <<EOF
scrape_configs:
  - job_name: model-platform-api
    static_configs:
      - targets: ["127.0.0.1:$port"]
        labels:
          namespace: $namespace
          pod: local-api
EOF
} >"$config"

promtool check config "$config" >/dev/null

url=http://127.0.0.1:$prometheus_port
echo "Prometheus: $url  (scraping http://127.0.0.1:$port/metrics every $interval; alerts: $url/alerts)"
echo "Config and data: $dir  (Ctrl-C to stop)"
exec prometheus \
  --config.file="$config" \
  --storage.tsdb.path="$dir/data" \
  --web.listen-address="127.0.0.1:$prometheus_port" \
  --log.level=warn
