#!/usr/bin/env bash
# Builds the original-style image (one stage, full MLflow and scikit-learn in the runtime) on the
# same base as ours and prints both sizes and the ratio; writes them to build/image-sizes.json.
# Usage: scripts/image-sizes.sh OUR_IMAGE BASE_IMAGE
# Targets (issue 6): ours <= 300 MB on the local Debian base, and <= 1/3 of the original style.
set -euo pipefail
cd "$(dirname "$0")/.."

OURS=$1
BASE=$2
ORIGINAL=${ORIGINAL_IMAGE:-mlops-model-server-original-style:measure}
UV=${UV:-uv}

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
"$UV" export --frozen --no-dev --no-default-groups --group train --no-emit-package onnx \
  --no-emit-package skl2onnx --quiet >"$context/requirements.txt"
cp -r server "$context/server"
find "$context/server" -name __pycache__ -prune -exec rm -rf {} +

started=$SECONDS
docker build --quiet -f docker/original-style.Dockerfile --build-arg "BASE_IMAGE=$BASE" \
  -t "$ORIGINAL" "$context" >/dev/null
build_seconds=$((SECONDS - started))

size() { docker image inspect -f '{{ .Size }}' "$1"; }
ours_bytes=$(size "$OURS")
original_bytes=$(size "$ORIGINAL")
base_bytes=$(size "$BASE")

mkdir -p build
python3 - "$OURS" "$ours_bytes" "$ORIGINAL" "$original_bytes" "$BASE" "$base_bytes" \
  "$build_seconds" <<'PY'
import json
import sys

ours, ours_b, original, original_b, base, base_b, seconds = sys.argv[1:]
mb = 1_000_000
result = {
    "ours": {"image": ours, "bytes": int(ours_b)},
    "original_style": {"image": original, "bytes": int(original_b), "build_seconds": int(seconds)},
    "base": {"image": base, "bytes": int(base_b)},
    "ratio": round(int(ours_b) / int(original_b), 3),
}
with open("build/image-sizes.json", "w") as out:
    json.dump(result, out, indent=2)
print(f"{'image':<16} {'MB':>7}  tag")
print(f"{'base':<16} {int(base_b) / mb:>7.1f}  {base}")
print(f"{'ours':<16} {int(ours_b) / mb:>7.1f}  {ours}")
print(f"{'original-style':<16} {int(original_b) / mb:>7.1f}  {original} (built in {seconds}s)")
print(f"ratio ours/original-style: {result['ratio']:.3f} (target <= 0.333)")
PY
