#!/usr/bin/env bash
# `make kind-up`: docs/kubernetes.md from top to bottom in a throwaway kind cluster, then helm test
# and the cluster tests. Needs Docker, kind, kubectl and helm; the cluster workflow runs it too.
#   1. a kind cluster (kept if it exists), the API and MLflow images built on the official Python
#      base and loaded into kind
#   2. the namespace and every Secret charts/platform/ci/kind-values.yaml refers to
#   3. everything but the API, then model versions 1 (alias production) and 2 through a port-forward
#   4. the API, helm test, make cluster-test
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER="${KIND_CLUSTER:-platform}"
RELEASE=platform
NAMESPACE=platform
VALUES=charts/platform/ci/kind-values.yaml
# The published base, as the build workflow uses it; the images kind-values.yaml names.
BASE_IMAGE="${BASE_IMAGE:-python:3.11.13-slim-bookworm}"
MLFLOW_VERSION="$(sed -n '/^name = "mlflow"$/{n;s/^version = "\(.*\)"/\1/p;}' uv.lock)"
API_IMAGE="mlops-model-platform:kind"
MLFLOW_IMAGE="mlops-model-platform/mlflow:${MLFLOW_VERSION}"
HELM="${HELM:-helm}"
MLFLOW_LOCAL_PORT="${MLFLOW_LOCAL_PORT:-5000}"

if ! kind get clusters | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" --wait 120s
fi
kubectl config use-context "kind-$CLUSTER"

make image IMAGE="$API_IMAGE" BASE_IMAGE="$BASE_IMAGE"
docker build --file deploy/compose/mlflow.Dockerfile --build-arg BASE_IMAGE="$BASE_IMAGE" \
  --build-arg MLFLOW_VERSION="$MLFLOW_VERSION" --tag "$MLFLOW_IMAGE" deploy/compose
kind load docker-image --name "$CLUSTER" "$API_IMAGE" "$MLFLOW_IMAGE"

kubectl create namespace "$NAMESPACE" --dry-run=client --output yaml | kubectl apply --filename -
# Every Secret the kind values refer to (tests/ci/test_kind.py checks this list against the render).
kubectl -n "$NAMESPACE" create secret generic platform-grafana-admin \
  --from-literal=admin-user=admin --from-literal=admin-password="$(openssl rand -hex 16)" \
  --dry-run=client --output yaml | kubectl apply --filename -

# MLflow (and monitoring) first: the API serves only what the registry holds.
"$HELM" upgrade --install "$RELEASE" charts/platform --namespace "$NAMESPACE" \
  --values "$VALUES" --set api.enabled=false --wait --timeout 10m

kubectl -n "$NAMESPACE" port-forward "svc/$RELEASE-mlflow" "$MLFLOW_LOCAL_PORT:5000" >/tmp/kind-port-forward.log 2>&1 &
forward=$!
trap 'kill "$forward" 2>/dev/null || true' EXIT
export MLFLOW_TRACKING_URI="http://127.0.0.1:$MLFLOW_LOCAL_PORT"
for _ in $(seq 60); do
  curl --silent --fail "$MLFLOW_TRACKING_URI/health" >/dev/null && break
  sleep 2
done
# Version 1 gets the production alias the release follows; version 2 is what the upgrade test pins.
make train
make train
kill "$forward"

"$HELM" upgrade --install "$RELEASE" charts/platform --namespace "$NAMESPACE" \
  --values "$VALUES" --wait --timeout 10m
"$HELM" test "$RELEASE" --namespace "$NAMESPACE" --logs --timeout 5m
make cluster-test KUBE_CONFIG="${KUBECONFIG:-$HOME/.kube/config}" \
  CLUSTER_RELEASE="$RELEASE" CLUSTER_NAMESPACE="$NAMESPACE"
