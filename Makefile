# The front door: every command a user or CI runs is a target here. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

UV_VERSION := 0.13.8
VENV := .venv
PY := $(VENV)/bin/python
TOOLS := .tools
# Use a uv already on PATH; otherwise install the pinned one into .tools.
UV := $(or $(shell command -v uv 2>/dev/null),$(TOOLS)/uv/bin/uv)
STAMP := $(VENV)/.synced

ARGS ?=
PORT ?= 8000
MODEL ?= iris-classifier
ALIAS ?= production
PYTEST_ARGS ?=

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(TOOLS)/uv/bin/uv:
	python3 -m venv $(TOOLS)/uv
	$(TOOLS)/uv/bin/pip install --quiet uv==$(UV_VERSION)

# The venv is rebuilt from the lock whenever pyproject.toml or uv.lock changes.
$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen
	@touch $@

.PHONY: setup
setup: $(STAMP) ## Create .venv from the lock file (runs by itself when missing or stale)

.PHONY: system-deps
system-deps: ## Install the Debian tools the tests use (prometheus, wrk, hey, docker) when missing
	scripts/install-system-deps.sh

.PHONY: train
train: $(STAMP) ## Train, export to ONNX, check parity, register in MLflow (ARGS="--dataset wine ...")
	$(PY) -m training $(ARGS)

MODEL_URI ?= models:/iris-classifier@production
OUT ?= build/model

.PHONY: export-model
export-model: $(STAMP) ## Copy a registered model into a plain directory (MODEL_URI=..., OUT=build/model)
	$(PY) -m training.export --model-uri "$(MODEL_URI)" --out "$(OUT)"

.PHONY: serve
serve: $(STAMP) ## Serve MODEL_URI (default models:/iris-classifier@production) on PORT (8000)
	MODEL_URI="$(MODEL_URI)" PORT=$(PORT) $(PY) -m server

.PHONY: lint
lint: $(STAMP) ## Ruff (lint and format check) and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

.PHONY: format
format: $(STAMP) ## Apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

.PHONY: test
test: system-deps lint ## The full test command: lint, then every test layer
	$(PY) -m pytest $(PYTEST_ARGS)

FUZZ_EXAMPLES ?= 300
FUZZ_MAX_SECONDS ?= 600

.PHONY: fuzz
fuzz: $(STAMP) ## Longer schemathesis run against real servers (FUZZ_EXAMPLES=300 per operation, FUZZ_MAX_SECONDS=600)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_MAX_SECONDS=$(FUZZ_MAX_SECONDS) \
		$(PY) -m pytest tests/fuzz -m fuzz --timeout $$(( $(FUZZ_MAX_SECONDS) * 3 + 600 )) $(PYTEST_ARGS)

SOAK_ARGS ?=

.PHONY: soak
soak: $(STAMP) ## Soak benchmark, minutes: 200,000 requests, server RSS sampled (SOAK_ARGS="--requests N --concurrency C")
	MODEL_URI="$(MODEL_URI)" $(PY) loadtest/soak.py $(SOAK_ARGS)

.PHONY: clean
clean: ## Remove the venv, tools and the local MLflow store
	rm -rf $(VENV) $(TOOLS) .mlflow .pytest_cache .mypy_cache .ruff_cache

.PHONY: actionlint
actionlint: $(STAMP) ## Lint the GitHub Actions workflows (actionlint, with shellcheck on run: scripts)
	$(VENV)/bin/actionlint -shellcheck $(VENV)/bin/shellcheck

# The cluster tests need a release already installed in a real cluster (the cluster workflow
# installs one in kind); they are skipped in `make test`.
CLUSTER_RELEASE ?= platform
CLUSTER_NAMESPACE ?= platform
KUBE_CONFIG ?= $(or $(KUBECONFIG),$(HOME)/.kube/config)

.PHONY: cluster-test
cluster-test: $(STAMP) ## Cluster tests against an installed release (KUBE_CONFIG=, CLUSTER_RELEASE=, CLUSTER_NAMESPACE=)
	$(PY) -m pytest tests/cluster -m cluster --timeout 1800 \
		--cluster-type existing --kube-config "$(KUBE_CONFIG)" --chart-path charts/platform \
		--test-extra-info "release=$(CLUSTER_RELEASE),namespace=$(CLUSTER_NAMESPACE)" $(PYTEST_ARGS)
