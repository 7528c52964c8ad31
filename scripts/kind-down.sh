#!/usr/bin/env bash
# `make kind-down`: delete the kind cluster `make kind-up` created.
set -euo pipefail
CLUSTER="${KIND_CLUSTER:-platform}"
if kind get clusters | grep -qx "$CLUSTER"; then
  kind delete cluster --name "$CLUSTER"
fi
