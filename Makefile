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

VERSION ?=
FORCE ?=
MLFLOW_PORT ?= 5000

.PHONY: models
models: $(STAMP) ## List a model's versions, metrics and aliases (MODEL=iris-classifier)
	$(PY) -m training.lifecycle models --model "$(MODEL)"

.PHONY: promote
promote: $(STAMP) ## Point an alias at a version after checking it (VERSION=n, ALIAS=production, MODEL=..., FORCE=1)
	@if [ -z "$(VERSION)" ]; then echo "error: VERSION is required: make promote VERSION=n" >&2; exit 2; fi
	$(PY) -m training.lifecycle promote --model "$(MODEL)" --alias "$(ALIAS)" --version "$(VERSION)" $(if $(filter 1 yes true,$(FORCE)),--force)

.PHONY: rollback
rollback: $(STAMP) ## Point an alias back at its previous version (ALIAS=production, MODEL=...)
	$(PY) -m training.lifecycle rollback --model "$(MODEL)" --alias "$(ALIAS)"

.PHONY: mlflow
mlflow: $(STAMP) ## MLflow server and UI on 127.0.0.1:5000 over the local store in .mlflow/ (MLFLOW_PORT=...)
	mkdir -p .mlflow/artifacts
	$(VENV)/bin/mlflow server --host 127.0.0.1 --port "$(MLFLOW_PORT)" \
		--backend-store-uri "sqlite:///$(CURDIR)/.mlflow/mlflow.db" \
		--serve-artifacts --artifacts-destination "$(CURDIR)/.mlflow/artifacts"

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

.PHONY: clean
clean: ## Remove the venv, tools and the local MLflow store
	rm -rf $(VENV) $(TOOLS) .mlflow .pytest_cache .mypy_cache .ruff_cache
