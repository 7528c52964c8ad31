"""Fixtures for the chart tests: the pinned tools and a cached `helm template` renderer."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "platform"
TOOLS = ROOT / ".tools"
HELM = TOOLS / "bin" / "helm"
OPERATOR_APIS = (
    "monitoring.coreos.com/v1/ServiceMonitor",
    "monitoring.coreos.com/v1/PrometheusRule",
)
NAMESPACE = "platform"
# The image repositories a user must give (where they push the API and MLflow images).
IMAGE_SETS = (
    "api.image.repository=ghcr.io/owner/mlops-model-platform",
    "mlflow.image.repository=ghcr.io/owner/mlops-model-platform/mlflow",
)

# name -> (values files relative to the chart, cluster serves the Prometheus Operator CRDs)
SCENARIOS: dict[str, tuple[tuple[str, ...], bool]] = {
    "default": ((), False),
    "default-operator-detected": ((), True),
    "standalone": (("ci/standalone-values.yaml",), False),
    "operator-forced": (("ci/operator-values.yaml",), False),
    "staging": (("values-staging.yaml",), False),
    "production": (("values-production.yaml",), True),
    "all-features": (("ci/all-features-values.yaml",), False),
    "aws": (("ci/aws-values.yaml",), False),
}

Manifest = dict[str, Any]


@pytest.fixture(scope="session", autouse=True)
def chart_tools() -> None:
    """Install the pinned helm, kubectl, checkov and CRD schemas (a no-op once installed)."""
    subprocess.run([str(ROOT / "scripts" / "install-chart-tools.sh")], check=True)


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the pinned helm; never raises, the caller checks returncode."""
    return subprocess.run([str(HELM), *args], capture_output=True, text=True, check=False)


def template_args(
    values: Sequence[str] = (), sets: Sequence[str] = (), operator: bool = False
) -> list[str]:
    args = ["template", "platform", str(CHART), "--namespace", NAMESPACE]
    for f in values:
        args += ["-f", str(CHART / f)]
    for s in (*IMAGE_SETS, *sets):
        args += ["--set", s]
    if operator:
        for api in OPERATOR_APIS:
            args += ["--api-versions", api]
    return args


@cache
def _render(values: tuple[str, ...], sets: tuple[str, ...], operator: bool) -> str:
    result = helm(*template_args(values, sets, operator))
    if result.returncode != 0:
        raise AssertionError(f"helm template failed:\n{result.stderr}")
    return result.stdout


def render_text(
    values: Sequence[str] = (), sets: Sequence[str] = (), operator: bool = False
) -> str:
    """The rendered manifests as text, as `helm template` prints them (hooks included)."""
    return _render(tuple(values), tuple(sets), operator)


def render(
    values: Sequence[str] = (), sets: Sequence[str] = (), operator: bool = False
) -> list[Manifest]:
    """The rendered objects."""
    text = render_text(values, sets, operator)
    return [doc for doc in yaml.safe_load_all(text) if doc]


def find(objs: list[Manifest], kind: str, name: str) -> Manifest:
    matches = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def container(deployment: Manifest, name: str) -> Manifest:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == name)


@pytest.fixture
def rendered() -> Callable[..., list[Manifest]]:
    return render


def scenario_render(name: str) -> list[Manifest]:
    values, operator = SCENARIOS[name]
    return render(values, operator=operator)
