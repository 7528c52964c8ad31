# The front door: every command a user or CI runs is a target here. `make help` lists them,
# grouped by the `##@` lines below, with the variables documented by the `##%` lines.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

UV_VERSION := 0.13.8
VENV := .venv
PY := $(VENV)/bin/python
TOOLS := .tools
# Use a uv already on PATH; otherwise install the pinned one into .tools.
UV := $(or $(shell command -v uv 2>/dev/null),$(TOOLS)/uv/bin/uv)

# Each target installs only the dependency groups it needs, from the lock, into one .venv:
# serving (and the lifecycle commands) the runtime alone, training adds the `train` group, the
# AWS commands the `aws` group, tests and lint every group. A stamp per set; a bigger set marks
# the smaller ones as done too.
SERVE_ENV := $(VENV)/.synced-serve
TRAIN_ENV := $(VENV)/.synced-train
AWS_ENV := $(VENV)/.synced-aws
DEV_ENV := $(VENV)/.synced-dev

##% DATASET        dataset to train: iris, wine or diabetes [iris]
DATASET ?= iris
##% MODEL          registered model name [DATASET's: iris-classifier, wine-classifier, diabetes-regressor]
MODEL ?= $(if $(filter diabetes,$(DATASET)),diabetes-regressor,$(DATASET)-classifier)
##% ALIAS          alias to serve, promote or roll back [production]
ALIAS ?= production
##% VERSION        version to promote, or to serve pinned (make serve VERSION=2)
VERSION ?=
##% MODEL_URI      what to serve: models:/<name>@<alias>, models:/<name>/<version> or a directory [from MODEL, ALIAS, VERSION]
MODEL_URI ?= $(if $(VERSION),models:/$(MODEL)/$(VERSION),models:/$(MODEL)@$(ALIAS))
##% HOST           address `make serve` listens on; 0.0.0.0 for every interface [127.0.0.1]
HOST ?= 127.0.0.1
##% PORT           port `make serve` listens on [8000]
PORT ?= 8000
##% FORCE          FORCE=1 promotes without the checks
FORCE ?=
##% N_ESTIMATORS   trees in the forest (make train) [100]
N_ESTIMATORS ?=
##% MAX_DEPTH      deepest a tree may grow (make train) [5]
MAX_DEPTH ?=
##% RANDOM_STATE   seed for the split and the forest (make train) [42]
RANDOM_STATE ?=
##% TEST_SIZE      held-out share of the rows (make train) [0.2]
TEST_SIZE ?=
##% ARGS           extra options for the command (make train ARGS=--help lists them)
ARGS ?=
##% PYTEST_ARGS    extra pytest options for the test targets
PYTEST_ARGS ?=
MLFLOW_PORT ?= 5000

# The training options a variable sets; MODEL only when given, so each dataset keeps its name.
TRAIN_FLAGS = --dataset "$(DATASET)" \
	$(if $(filter command line environment,$(origin MODEL)),--model-name "$(MODEL)") \
	$(if $(N_ESTIMATORS),--n-estimators "$(N_ESTIMATORS)") \
	$(if $(MAX_DEPTH),--max-depth "$(MAX_DEPTH)") \
	$(if $(RANDOM_STATE),--random-state "$(RANDOM_STATE)") \
	$(if $(TEST_SIZE),--test-size "$(TEST_SIZE)")

##@ Getting started

.PHONY: help
help: ## List the targets, by task, and the variables they take
	@if [ -t 1 ] && [ -z "$${NO_COLOR:-}" ] && [ "$${TERM:-dumb}" != dumb ]; then color=1; else color=0; fi; \
		awk -v color=$$color -f scripts/make-help.awk $(MAKEFILE_LIST)

.PHONY: setup
setup: $(DEV_ENV) ## Install everything from the lock: serving, training, test and lint tools

.PHONY: train
train: $(TRAIN_ENV) ## Train, export to ONNX, check parity, register in MLflow (DATASET=, MODEL=, N_ESTIMATORS=, ARGS=)
	$(PY) -m training $(strip $(TRAIN_FLAGS)) $(ARGS)

.PHONY: serve
serve: $(SERVE_ENV) ## Serve a model on http://127.0.0.1:8000 (MODEL=, ALIAS=, VERSION=, MODEL_URI=, HOST=, PORT=)
	@echo "serving $(MODEL_URI) on http://$(HOST):$(PORT) (API docs at /docs; Ctrl-C stops)"
	MODEL_URI="$(MODEL_URI)" HOST="$(HOST)" PORT="$(PORT)" $(PY) -m server

##@ Models

.PHONY: models
models: $(SERVE_ENV) ## List a model's versions with their parameters, metrics and aliases (MODEL=)
	$(PY) -m training.lifecycle models --model "$(MODEL)"

.PHONY: promote
promote: $(SERVE_ENV) ## Point an alias at a version after comparing and checking it (VERSION=n, MODEL=, ALIAS=, FORCE=1)
	@if [ -z "$(VERSION)" ]; then echo "error: VERSION is required: make promote VERSION=n" >&2; exit 2; fi
	$(PY) -m training.lifecycle promote --model "$(MODEL)" --alias "$(ALIAS)" --version "$(VERSION)" $(if $(filter 1 yes true,$(FORCE)),--force)

.PHONY: rollback
rollback: $(SERVE_ENV) ## Point an alias back at its previous version (MODEL=, ALIAS=)
	$(PY) -m training.lifecycle rollback --model "$(MODEL)" --alias "$(ALIAS)"

# --- The closed loop: feedback, retraining from production, promotion by evidence ---------------
##% PREDICTION_STORE_URI  the store make retrain and make judge read (passed on, never echoed) [the server's default]
METRICS_URL ?=

.PHONY: retrain
retrain: $(TRAIN_ENV) ## Train a new version on labelled production predictions; alias challenger (MODEL=, ARGS="--original-share 0.3 ...")
	$(PY) -m training.retrain --model "$(MODEL)" $(ARGS)

.PHONY: judge
judge: $(TRAIN_ENV) ## Promote the challenger if the evidence says so, roll back a bad champion (METRICS_URL=..., FORCE=1)
	$(PY) -m training.judge --model "$(MODEL)" $(if $(METRICS_URL),--metrics-url "$(METRICS_URL)") \
		$(if $(filter 1 yes true,$(FORCE)),--force) $(ARGS)

.PHONY: loop-demo
loop-demo: $(DEV_ENV) ## The whole loop on loopback: drift, retrain, shadow, judge, promote, rollback; prints a timeline, saves a PNG
	$(PY) -m demo.loop $(ARGS)

OUT ?= build/model

.PHONY: export-model
export-model: $(TRAIN_ENV) ## Copy a registered model into a plain directory (MODEL_URI= or MODEL=/ALIAS=, OUT=build/model)
	$(PY) -m training.export --model-uri "$(MODEL_URI)" --out "$(OUT)"

##% READER_MODELS  models the API's read-only MLflow user may read (make mlflow-reader) [MLFLOW_READER_MODELS]
READER_MODELS ?=

.PHONY: mlflow-reader
mlflow-reader: $(SERVE_ENV) ## Create or update the API's read-only MLflow user (READER_MODELS=a,b; MLflow URL and credentials from the environment: docs/chart-security.md)
	$(if $(READER_MODELS),MLFLOW_READER_MODELS="$(READER_MODELS)") $(PY) charts/platform/charts/mlflow/files/mlflow_reader.py

# Where `make mlflow` keeps the artifacts it proxies: the local store, or s3://<bucket>/<prefix>,
# with the AWS credentials, AWS_DEFAULT_REGION and (for an S3-compatible store)
# MLFLOW_S3_ENDPOINT_URL in the environment of `make mlflow` only; clients never need them.
MLFLOW_ARTIFACTS_DESTINATION ?= $(CURDIR)/.mlflow/artifacts
MLFLOW_BACKEND_STORE_URI ?= sqlite:///$(CURDIR)/.mlflow/mlflow.db

.PHONY: mlflow
mlflow: $(TRAIN_ENV) $(if $(filter s3://%,$(MLFLOW_ARTIFACTS_DESTINATION)),$(AWS_ENV)) ## MLflow server and UI on 127.0.0.1:5000 over .mlflow/ (MLFLOW_PORT=, MLFLOW_ARTIFACTS_DESTINATION=s3://bucket/prefix)
	mkdir -p .mlflow $(if $(findstring ://,$(MLFLOW_ARTIFACTS_DESTINATION)),,"$(MLFLOW_ARTIFACTS_DESTINATION)")
	$(VENV)/bin/mlflow server --host 127.0.0.1 --port "$(MLFLOW_PORT)" \
		--backend-store-uri "$(MLFLOW_BACKEND_STORE_URI)" \
		--serve-artifacts --artifacts-destination "$(MLFLOW_ARTIFACTS_DESTINATION)"

##@ Serving

# --- Local monitoring -----------------------------------------------------------------------
PROMETHEUS_PORT ?= 9090

.PHONY: monitor
monitor: ## Local Prometheus on 127.0.0.1:PROMETHEUS_PORT (9090) scraping `make serve` on PORT, with the chart's alert rules
	PORT=$(PORT) PROMETHEUS_PORT=$(PROMETHEUS_PORT) scripts/monitor.sh

.PHONY: up
up: ## Run MLflow, the API, Prometheus and Grafana locally with Docker Compose
	scripts/docker-engine.sh --compose
	$(COMPOSE) -p $(COMPOSE_PROJECT) -f $(COMPOSE_FILE) up -d --build
	@echo "API http://127.0.0.1:8000  MLflow http://127.0.0.1:5000  Prometheus http://127.0.0.1:9090  Grafana http://127.0.0.1:3000"

.PHONY: down
down: ## Stop the local Compose stack
	$(COMPOSE) -p $(COMPOSE_PROJECT) -f $(COMPOSE_FILE) down

##@ Container image

# ---- Container image (docker/, Dockerfile, tests/image) ----------------------------------------
# Here no image can be pulled, so the default base is a local debootstrap image built once per
# machine; BASE_IMAGE=python:3.11.13-slim-bookworm builds on the official (published) base.
IMAGE ?= mlops-model-server:dev
# The training image the judge CronJob runs (docker/training.Dockerfile), named as published:
# <API repository>/training.
TRAINING_IMAGE ?= mlops-model-server/training:dev
LOCAL_BASE_IMAGE := mlops-platform/debian-python:bookworm
BASE_IMAGE ?= $(LOCAL_BASE_IMAGE)
# An exported model directory inside the build context (.dockerignore lets build/model in);
# FALLBACK_MODEL= bakes none.
FALLBACK_MODEL ?= build/model
IMAGE_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -n1)
IMAGE_REVISION := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
IMAGE_SOURCE := $(or $(shell git config --get remote.origin.url 2>/dev/null),unknown)
COMPOSE = $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
COMPOSE_FILE := deploy/compose/compose.yaml
COMPOSE_PROJECT := mlops-platform

.PHONY: docker-engine
docker-engine: ## Install Debian's Docker engine if missing and start dockerd if not running (needs root then)
	scripts/docker-engine.sh

.PHONY: base-image
base-image: docker-engine ## Build the local debootstrap Python base image (once per machine)
	scripts/build-base-image.sh $(LOCAL_BASE_IMAGE)

# The model baked in as fallback: exported from the registry, trained first when it has none.
build/model/model.onnx:
	$(MAKE) --no-print-directory export-model MODEL_URI=models:/$(MODEL)@$(ALIAS) OUT=build/model \
		2>/dev/null || { echo "No $(MODEL)@$(ALIAS) in the registry yet: training one."; \
		$(MAKE) train && $(MAKE) export-model MODEL_URI=models:/$(MODEL)@$(ALIAS) OUT=build/model; }

IMAGE_PREREQUISITES := docker-engine $(if $(filter $(LOCAL_BASE_IMAGE),$(BASE_IMAGE)),base-image) \
	$(if $(FALLBACK_MODEL),$(FALLBACK_MODEL)/model.onnx)

.PHONY: image
image: $(IMAGE_PREREQUISITES) ## Build the server image (IMAGE=, BASE_IMAGE=, FALLBACK_MODEL=)
	docker build --build-arg BASE_IMAGE=$(BASE_IMAGE) \
		--build-arg FALLBACK_MODEL=$(or $(FALLBACK_MODEL),docker/no-model) \
		--build-arg VERSION=$(IMAGE_VERSION) --build-arg REVISION=$(IMAGE_REVISION) \
		--build-arg SOURCE=$(IMAGE_SOURCE) -t $(IMAGE) .
	@docker image inspect -f '$(IMAGE): {{ .Size }} bytes' $(IMAGE)

.PHONY: image-training
image-training: docker-engine $(if $(filter $(LOCAL_BASE_IMAGE),$(BASE_IMAGE)),base-image) ## Build the training image the judge CronJob runs: train group, training/ and server/ (TRAINING_IMAGE=, BASE_IMAGE=)
	docker build -f docker/training.Dockerfile --build-arg BASE_IMAGE=$(BASE_IMAGE) \
		--build-arg VERSION=$(IMAGE_VERSION) --build-arg REVISION=$(IMAGE_REVISION) \
		--build-arg SOURCE=$(IMAGE_SOURCE) -t $(TRAINING_IMAGE) .
	@docker image inspect -f '$(TRAINING_IMAGE): {{ .Size }} bytes' $(TRAINING_IMAGE)

.PHONY: image-test
image-test: $(DEV_ENV) ## Build the image and test it with testinfra (non-root, read-only, /predict, SIGTERM)
	$(PY) -m pytest -m image tests/image $(PYTEST_ARGS)

.PHONY: image-sizes
image-sizes: image ## Build an original-style image (full MLflow + scikit-learn) and compare sizes
	UV=$(UV) scripts/image-sizes.sh $(IMAGE) $(BASE_IMAGE)

##@ Cluster (Helm chart)

# The cluster tests need a release already installed in a real cluster (the cluster workflow
# installs one in kind); they are skipped in `make test`.
CLUSTER_RELEASE ?= platform
CLUSTER_NAMESPACE ?= platform
KUBE_CONFIG ?= $(or $(KUBECONFIG),$(HOME)/.kube/config)

.PHONY: cluster-test
cluster-test: $(DEV_ENV) ## Cluster tests against an installed release (KUBE_CONFIG=, CLUSTER_RELEASE=, CLUSTER_NAMESPACE=)
	$(PY) -m pytest tests/cluster -m cluster --timeout 1800 \
		--cluster-type existing --kube-config "$(KUBE_CONFIG)" --chart-path charts/platform \
		--test-extra-info "release=$(CLUSTER_RELEASE),namespace=$(CLUSTER_NAMESPACE)" $(PYTEST_ARGS)

# --- Helm chart (charts/platform), verified offline -------------------------------------------
.PHONY: chart-tools
chart-tools: ## Install the pinned helm, kubectl, checkov and CRD schemas into .tools (checksummed)
	scripts/install-chart-tools.sh

.PHONY: chart-test
chart-test: system-deps chart-tools $(DEV_ENV) ## Lint, render, validate, policy-scan and unit-test the chart and its alerts
	$(PY) -m pytest -m chart tests/chart $(PYTEST_ARGS)

# A throwaway kind cluster that follows docs/kubernetes.md (Docker, kind, kubectl and helm needed);
# the cluster workflow runs these two targets.
.PHONY: kind-up
kind-up: $(DEV_ENV) ## Create a kind cluster, load the images, install, register models, helm test, cluster tests
	scripts/kind-up.sh

.PHONY: kind-down
kind-down: ## Delete the kind cluster kind-up created
	scripts/kind-down.sh

# --- Rehearsal: the rendered chart run in Docker (rehearsal/, tests/rehearsal) -------------------
ENV ?=

.PHONY: rehearse
rehearse: chart-tools base-image $(DEV_ENV) ## Run what the chart renders for ENV (staging, production, empty: defaults) in Docker, as rendered
	$(PY) -m rehearsal --env "$(ENV)" --image "$(IMAGE)"

##@ Tests and code quality

.PHONY: system-deps
system-deps: ## Install the Debian tools the tests use (prometheus, wrk, hey, h2load, node, postgresql) when missing; needs root then
	scripts/install-system-deps.sh

.PHONY: lint
lint: $(DEV_ENV) ## Ruff (lint and format check) and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

.PHONY: format
format: $(DEV_ENV) ## Apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

.PHONY: test
test: system-deps lint ## Lint, then every test layer (root only to install missing tools or start Docker)
	@scripts/docker-engine.sh --check
	@if scripts/arm64-emulation.sh --check >/dev/null 2>&1; then \
		echo "arm64: emulation is ready; the arm64 tests will use it"; \
	else \
		echo "arm64: emulation is not set up; the arm64 tests will install qemu-user-static," \
			"binfmt-support and debootstrap and enable the qemu-aarch64 handler, which needs root"; \
	fi
	$(PY) -m pytest $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: $(DEV_ENV) ## The fast layer: every server module in process, no subprocess, no MLflow (< 1 min)
	$(PY) -m pytest tests/server -m unit -q $(PYTEST_ARGS)

FUZZ_EXAMPLES ?= 300
FUZZ_MAX_SECONDS ?= 600

.PHONY: fuzz
fuzz: $(DEV_ENV) ## Longer schemathesis run against real servers (FUZZ_EXAMPLES=300 per operation, FUZZ_MAX_SECONDS=600)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_MAX_SECONDS=$(FUZZ_MAX_SECONDS) \
		$(PY) -m pytest tests/fuzz -m fuzz --timeout $$(( $(FUZZ_MAX_SECONDS) * 3 + 600 )) $(PYTEST_ARGS)

.PHONY: actionlint
actionlint: $(DEV_ENV) ## Lint the GitHub Actions workflows (actionlint, with shellcheck on run: scripts)
	$(VENV)/bin/actionlint -shellcheck $(VENV)/bin/shellcheck

PROTOS := server/protos

.PHONY: grpc-stubs
grpc-stubs: $(DEV_ENV) ## Regenerate the committed protobuf code of the gRPC front end from server/protos/*.proto
	$(PY) -m grpc_tools.protoc -I $(PROTOS) --python_out=$(PROTOS) --pyi_out=$(PROTOS) $(PROTOS)/*.proto

##@ Documentation

.PHONY: docs
docs: $(DEV_ENV) ## Regenerate the pages that mirror code or result files (metrics, settings, alerts, chart values, README figures)
	$(PY) scripts/generate_docs.py

.PHONY: measure-quickstart
measure-quickstart: $(DEV_ENV) ## Time the README's quick start on a fresh clone (writes docs/results/quickstart.json; then make docs)
	$(PY) scripts/measure_quickstart.py
	$(PY) scripts/generate_docs.py

##@ Benchmarks

.PHONY: bench-drift
bench-drift: $(DEV_ENV) ## Drift detection's cost per request at windows of 100 to 100,000 rows
	$(PY) -m loadtest.drift_cost

.PHONY: bench-recording-cpu
bench-recording-cpu: $(DEV_ENV) ## Recording's CPU per one-row request (loop, building, SQLite) and the event loop's stalls beside the writer, in process (ARGS=...)
	$(PY) -m loadtest.recording_cpu $(ARGS)

SOAK_ARGS ?=

.PHONY: soak
soak: $(DEV_ENV) ## Soak benchmark, minutes: 200,000 requests, server RSS sampled (SOAK_ARGS="--requests N --concurrency C")
	MODEL_URI="$(MODEL_URI)" $(PY) loadtest/soak.py $(SOAK_ARGS)

# Load tests and benchmarks (loadtest/). Results go to loadtest/results/ (git-ignored).
# URL= drives a running server instead of starting one; ARGS= passes options (--help lists them).
URL ?=

.PHONY: loadtest
loadtest: $(DEV_ENV) ## Load test /predict at concurrency 1,16,64,100 (URL=http://host:port, API_KEY=, ARGS="--duration 5")
	$(PY) -m loadtest.run $(if $(URL),--url "$(URL)") $(ARGS)

.PHONY: bench
bench: $(DEV_ENV) ## Side by side: this server, constant JSON, mlflow models serve, in-process sklearn vs onnxruntime (ARGS="--repeats 3")
	$(PY) -m loadtest.bench $(ARGS)

.PHONY: bench-server
bench-server: $(DEV_ENV) ## This server's own figures against their targets, without MLflow's server (ARGS=...)
	$(PY) -m loadtest.bench --server-only $(ARGS)

.PHONY: bench-recording
bench-recording: $(DEV_ENV) ## /predict throughput with prediction recording off and on (wrk, c16; ARGS="--duration 10")
	$(PY) -m loadtest.recording_cost $(ARGS)

.PHONY: bench-protocols
bench-protocols: system-deps $(DEV_ENV) ## Every protocol beside /predict: 1 row at c16 (CPU per request), 1000 rows at c1 (ARGS=...)
	$(PY) -m loadtest.protocols $(if $(filter command line environment,$(origin MODEL_URI)),--model-uri "$(MODEL_URI)") $(ARGS)

.PHONY: bench-probes
bench-probes: $(DEV_ENV) ## /health latency under 200 clients posting the largest batches, per MAX_CONCURRENCY (ARGS="--settings 0,8,16 --repeats 2")
	$(PY) -m loadtest.probe_latency $(ARGS)

##% BEFORE         an older checkout to measure beside this one (make bench-hardening, bench-compare)
BEFORE ?=

.PHONY: bench-hardening
bench-hardening: $(DEV_ENV) ## Hostile inputs and careless settings against a real server; BEFORE=<older checkout> too (writes docs/security-figures.md)
	$(PY) -m loadtest.hardening $(if $(BEFORE),--before "$(BEFORE)") $(ARGS)

.PHONY: bench-compare
bench-compare: system-deps $(DEV_ENV) ## /predict and OIP infer beside BEFORE=<older checkout>, interleaved rounds: req/s and server CPU per request (ARGS=...)
	@test -n "$(BEFORE)" || { echo "error: set BEFORE=<older checkout>, e.g. git worktree add /tmp/before HEAD~1" >&2; exit 2; }
	$(PY) -m loadtest.compare --before "$(BEFORE)" $(if $(filter command line environment,$(origin MODEL_URI)),--model-uri "$(MODEL_URI)") $(ARGS)

##@ AWS

# ---- AWS: parameter store to Secrets, and the weekly audit (docs/aws.md) -----------------------
# AWS credentials and region come from the environment (a profile, SSO, or the workflow's OIDC role).
VALUES ?= charts/platform/values-production.yaml
NAMESPACE ?= platform
KUBECTL ?= kubectl

.PHONY: ssm-secrets
ssm-secrets: $(AWS_ENV) ## Apply the chart's externalSecrets.secrets from SSM as Secrets, printing no value (VALUES=, NAMESPACE=, ARGS=--dry-run)
	$(PY) -m cloud.ssm_secrets $(foreach f,$(VALUES),--values "$(f)") --namespace "$(NAMESPACE)" --kubectl "$(KUBECTL)" $(ARGS)

AUDIT_DIR := build/audit
# Findings at or above this severity fail an audit part: CRITICAL, HIGH, MEDIUM or LOW.
AUDIT_FAIL_ON ?= HIGH
PIP_AUDIT_VERSION := 2.10.1
PROWLER_VERSION := 5.46.0
SCANNER ?=
REPORT ?=

.PHONY: scan-report
scan-report: $(AWS_ENV) ## A scanner's JSON report as a Markdown section; fails at AUDIT_FAIL_ON (SCANNER=trivy|pip-audit|checkov|prowler REPORT=file)
	$(PY) -m cloud.scan_report "$(SCANNER)" "$(REPORT)" --fail-on "$(AUDIT_FAIL_ON)"

.PHONY: audit-deps
audit-deps: $(AWS_ENV) ## pip-audit of every package in uv.lock (runtime and all groups), as a Markdown section
	@mkdir -p $(AUDIT_DIR)
	$(UV) export --frozen --all-groups --no-emit-project --no-hashes --quiet -o $(AUDIT_DIR)/requirements.txt
	$(UV) tool run --quiet --from "pip-audit==$(PIP_AUDIT_VERSION)" pip-audit --requirement $(AUDIT_DIR)/requirements.txt \
		--no-deps --disable-pip --progress-spinner off --format json --output $(AUDIT_DIR)/pip-audit.json || true
	@$(MAKE) --no-print-directory -s scan-report SCANNER=pip-audit REPORT=$(AUDIT_DIR)/pip-audit.json

.PHONY: audit-chart
audit-chart: chart-tools $(AWS_ENV) ## checkov on the chart rendered with each values file, as a Markdown section
	@mkdir -p $(AUDIT_DIR)/chart
	@for values in values.yaml values-staging.yaml values-production.yaml ci/aws-values.yaml; do \
		$(TOOLS)/bin/helm template platform charts/platform --namespace platform \
			-f charts/platform/$$values >$(AUDIT_DIR)/chart/$$(basename $$values .yaml).yaml; \
	done
	$(TOOLS)/checkov/bin/checkov --directory $(AUDIT_DIR)/chart --framework kubernetes --output json \
		--quiet --skip-download >$(AUDIT_DIR)/checkov.json || true
	@$(MAKE) --no-print-directory -s scan-report SCANNER=checkov REPORT=$(AUDIT_DIR)/checkov.json

.PHONY: audit-prowler
audit-prowler: $(AWS_ENV) ## Prowler against the AWS account (findings at AUDIT_FAIL_ON and above), as a Markdown section
	@mkdir -p $(AUDIT_DIR)/prowler
	$(UV) tool run --quiet --from "prowler==$(PROWLER_VERSION)" prowler aws --no-banner --ignore-exit-code-3 \
		--status FAIL --output-formats json-ocsf --output-directory $(AUDIT_DIR)/prowler --output-filename prowler
	@$(MAKE) --no-print-directory -s scan-report SCANNER=prowler REPORT=$(AUDIT_DIR)/prowler/prowler.ocsf.json

.PHONY: audit-aws
audit-aws: $(AWS_ENV) ## AWS spending by service (30 days against the 30 before) and the billing-alarm check
	$(PY) -m cloud.aws_audit

##@ arm64

# ---- arm64 (arm64/, scripts/arm64-*.sh, docs/architectures.md) --------------------------------
# Emulated here (qemu user-mode, a debootstrapped arm64 root built once per machine), native in
# the arm64 CI job. Results go to build/arm64/.
ARM64_WORK ?= build/arm64
REFERENCE ?= $(ARM64_WORK)/bundle
MODEL_DIR ?= $(REFERENCE)/models/iris-classifier
NATIVE ?=

.PHONY: arm64-emulation
arm64-emulation: ## Install qemu-user-static, binfmt-support, debootstrap; enable the aarch64 handler only
	scripts/arm64-emulation.sh

.PHONY: verify-arm64
verify-arm64: $(DEV_ENV) arm64-emulation ## Emulated arm64 vs x86-64: outputs on every held-out row, server answers (minutes the first time)
	UV=$(UV) $(PY) -m arm64 --work $(ARM64_WORK) verify $(ARGS)

.PHONY: arm64-reference
arm64-reference: $(DEV_ENV) ## Train the test models, record this machine's answers in REFERENCE for arm64-check
	$(PY) -m arm64 --work $(ARM64_WORK) reference $(ARGS)

.PHONY: arm64-check
arm64-check: $(DEV_ENV) ## On arm64: this machine's answers vs the x86-64 ones in REFERENCE (build/arm64/bundle)
	$(PY) -m arm64 --work $(ARM64_WORK) check --reference $(REFERENCE)

.PHONY: arm64-bench
arm64-bench: $(DEV_ENV) ## In-server inference p50/p99, /predict p50/p99 at c1 and c16 (MODEL_DIR=, ARGS=...)
	$(PY) -m arm64 --work $(ARM64_WORK) bench --model $(MODEL_DIR) $(ARGS)

ARM64_ROOT_DIR ?= /var/tmp/mlops-arm64

.PHONY: arm64-clean
arm64-clean: ## Remove the cached arm64 roots (waits for any check using one to finish)
	@for dir in $(ARM64_ROOT_DIR)/*/; do \
		[ -f "$$dir.lock" ] || continue; \
		echo "removing $$dir"; \
		$(if $(filter 0,$(shell id -u)),,sudo -n) flock -x "$$dir.lock" rm -rf "$$dir"; \
	done

.PHONY: arm64-docs
arm64-docs: $(DEV_ENV) ## Write the latest arm64 result tables into docs/architectures.md (NATIVE=CI artifact dir)
	$(PY) -m arm64 --work $(ARM64_WORK) docs $(if $(NATIVE),--native $(NATIVE))

##@ Housekeeping

.PHONY: clean
clean: ## Remove the virtual environment, tools and caches; keeps the registry (.mlflow/) and recorded predictions (.loop/)
	rm -rf $(VENV) $(TOOLS) .monitor .pytest_cache .mypy_cache .ruff_cache

.PHONY: clean-registry
clean-registry: ## Delete the local model registry (.mlflow/): every registered model, version and run
	@if [ ! -e .mlflow ]; then echo "no local registry in .mlflow/; nothing deleted"; exit 0; fi; \
	if [ -t 0 ] && [ -z "$(filter 1 yes true,$(FORCE))" ]; then \
		read -r -p "Delete the local registry .mlflow/ with every model, version and run? [y/N] " answer; \
		case "$$answer" in y|Y|yes) ;; *) echo "nothing deleted"; exit 0;; esac; \
	fi; \
	rm -rf .mlflow; echo "deleted the local registry .mlflow/"

.PHONY: clean-predictions
clean-predictions: ## Delete the local prediction store (.loop/): recorded predictions and their feedback
	@if [ ! -e .loop ]; then echo "no local prediction store in .loop/; nothing deleted"; exit 0; fi; \
	if [ -t 0 ] && [ -z "$(filter 1 yes true,$(FORCE))" ]; then \
		read -r -p "Delete the local prediction store .loop/ with every recorded prediction and label? [y/N] " answer; \
		case "$$answer" in y|Y|yes) ;; *) echo "nothing deleted"; exit 0;; esac; \
	fi; \
	rm -rf .loop; echo "deleted the local prediction store .loop/"

# --- Environments --------------------------------------------------------------------------------
$(TOOLS)/uv/bin/uv:
	python3 -m venv $(TOOLS)/uv
	$(TOOLS)/uv/bin/pip install --quiet uv==$(UV_VERSION)

# --inexact: a smaller set never uninstalls what a bigger one added. The venv is synced again
# whenever pyproject.toml or uv.lock changes.
$(SERVE_ENV): pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --inexact --no-default-groups
	@touch $@

$(TRAIN_ENV): pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --inexact --no-default-groups --group train
	@touch $@ $(SERVE_ENV)

$(AWS_ENV): pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --inexact --no-default-groups --group aws
	@touch $@ $(SERVE_ENV)

$(DEV_ENV): pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --inexact --all-groups
	@touch $@ $(AWS_ENV) $(TRAIN_ENV) $(SERVE_ENV)
