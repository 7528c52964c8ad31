"""Every rendered object validates against the Kubernetes OpenAPI schemas (kubernetes-validate,
strict: unknown fields fail), and the custom resources against the prometheus-operator and
External Secrets Operator CRD schemas (npm @kubernetes-models)."""

from __future__ import annotations

import json
import subprocess

import kubernetes_validate
import pytest

from tests.chart.conftest import SCENARIOS, TOOLS, scenario_render

pytestmark = pytest.mark.chart

# The kubectl the tools pin is 1.35; 1.37 is the newest schema set kubernetes-validate ships.
KUBERNETES_VERSIONS = ["1.35.0", "1.37.0"]
CRD_GROUP = "monitoring.coreos.com/v1"
ESO_GROUP = "external-secrets.io/v1"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_objects_match_kubernetes_schemas(scenario: str, version: str) -> None:
    problems = []
    for obj in scenario_render(scenario):
        if obj["apiVersion"] in (CRD_GROUP, ESO_GROUP):
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as err:
            problems.append(f"{obj['kind']}/{obj['metadata']['name']}: {err.message} at {err.path}")
    assert not problems, "\n".join(problems)


OPERATOR_SCENARIOS = [s for s, (_, op) in SCENARIOS.items() if op] + ["operator-forced"]


def crd_validate(objs: list[dict[str, object]]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["node", str(TOOLS / "crd-validator" / "validate.mjs")],
        input=json.dumps(objs),
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("scenario", OPERATOR_SCENARIOS)
def test_operator_objects_match_crd_schemas(scenario: str) -> None:
    objs = [o for o in scenario_render(scenario) if o["apiVersion"] == CRD_GROUP]
    assert {o["kind"] for o in objs} == {"ServiceMonitor", "PrometheusRule"}
    result = crd_validate(objs)
    assert result.returncode == 0, result.stdout + result.stderr


def test_external_secrets_match_crd_schemas() -> None:
    objs = [o for o in scenario_render("aws") if o["apiVersion"] == ESO_GROUP]
    assert {o["kind"] for o in objs} == {"ExternalSecret", "SecretStore"}
    result = crd_validate(objs)
    assert result.returncode == 0, result.stdout + result.stderr


def test_crd_validator_rejects_a_broken_external_secret() -> None:
    """The ESO check really checks: a remote reference without its key fails it."""
    external_secret = next(o for o in scenario_render("aws") if o["kind"] == "ExternalSecret")
    broken = json.loads(json.dumps(external_secret))
    del broken["spec"]["data"][0]["remoteRef"]["key"]
    result = crd_validate([broken])
    assert result.returncode == 1
    assert "remoteRef must have required property key" in result.stdout, result.stdout


def test_crd_validator_rejects_a_broken_object() -> None:
    """The CRD check really checks: a wrong type in a PrometheusRule fails it."""
    broken = {
        "apiVersion": CRD_GROUP,
        "kind": "PrometheusRule",
        "metadata": {"name": "broken"},
        "spec": {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "up", "for": 5}]}]},
    }
    result = subprocess.run(
        ["node", str(TOOLS / "crd-validator" / "validate.mjs")],
        input=json.dumps([broken]),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "for must be string" in result.stdout
