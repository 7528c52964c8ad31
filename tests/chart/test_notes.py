"""What `helm install` prints (templates/NOTES.txt): the Secrets the values name, exactly those the
rendered objects use; the first model, as docs/kubernetes.md registers it; how to reach the API;
helm test and a rollback that says whether the model rolls back too."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from functools import cache
from typing import Any

import pytest
import yaml

from tests.chart.conftest import CHART, IMAGE_SETS, NAMESPACE, ROOT, helm

pytestmark = pytest.mark.chart

GUIDE = ROOT / "docs" / "kubernetes.md"
# Scenarios `helm install --dry-run=client` can render: it has no --api-versions, so the operator
# mode is tested where values force it (operator-forced, production).
SCENARIOS: dict[str, tuple[str, ...]] = {
    "default": (),
    "standalone": ("ci/standalone-values.yaml",),
    "operator-forced": ("ci/operator-values.yaml",),
    "staging": ("values-staging.yaml",),
    "production": ("values-production.yaml",),
    "all-features": ("ci/all-features-values.yaml",),
    "aws": ("ci/aws-values.yaml",),
}


@cache
def _install(values: tuple[str, ...], sets: tuple[str, ...]) -> dict[str, Any]:
    args = ["install", "platform", str(CHART), "--namespace", NAMESPACE, "--dry-run=client"]
    for f in values:
        args += ["-f", str(CHART / f)]
    for s in (*IMAGE_SETS, *sets):
        args += ["--set", s]
    result = helm(*args, "-o", "json")
    if result.returncode != 0:
        raise AssertionError(f"helm install --dry-run=client failed:\n{result.stderr}")
    release: dict[str, Any] = json.loads(result.stdout)
    return release


def install(values: Sequence[str] = (), sets: Sequence[str] = ()) -> dict[str, Any]:
    """The release `helm install --dry-run=client` would create: notes, manifest and hooks."""
    return _install(tuple(values), tuple(sets))


def notes(values: Sequence[str] = (), sets: Sequence[str] = ()) -> str:
    text: str = install(values, sets)["info"]["notes"]
    return text


def objects(release: dict[str, Any]) -> list[dict[str, Any]]:
    texts = [release["manifest"], *(hook["manifest"] for hook in release.get("hooks") or [])]
    return [doc for text in texts for doc in yaml.safe_load_all(text) if doc]


def _secret_names(node: Any) -> Iterator[str]:
    """Every Secret an object refers to: volumes, env, envFrom, pull secrets, scrape logins."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "secretName":
                yield value
            elif key in ("secretKeyRef", "secretRef") or (key == "secret" and "name" in value):
                yield value["name"]
            elif key == "imagePullSecrets":
                yield from (entry["name"] for entry in value)
            elif key == "basicAuth":
                yield from (ref["name"] for ref in value.values())
            else:
                yield from _secret_names(value)
    elif isinstance(node, list):
        for item in node:
            yield from _secret_names(item)


def referenced_secrets(release: dict[str, Any]) -> set[str]:
    return {name for obj in objects(release) for name in _secret_names(obj)}


def listed_secrets(text: str) -> list[str]:
    """The Secret names of the notes' `kubectl get secret` check line (none: no such line)."""
    found = re.search(rf"kubectl -n {NAMESPACE} get secret (.+)", text)
    return found.group(1).split() if found else []


@pytest.mark.parametrize("values", ["values.yaml", "values-staging.yaml", "values-production.yaml"])
def test_notes_render_for_every_values_file(values: str) -> None:
    text = notes(() if values == "values.yaml" else (values,))
    assert text.startswith(f"Release platform, revision 1, in namespace {NAMESPACE}.")
    assert f"helm test platform -n {NAMESPACE}" in text
    assert f"helm rollback platform [REVISION] -n {NAMESPACE}" in text


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("api", ["api on", "first install"])
def test_notes_name_exactly_the_secrets_the_release_uses(scenario: str, api: str) -> None:
    sets = ("api.enabled=false",) if api == "first install" else ()
    release = install(SCENARIOS[scenario], sets)
    listed = listed_secrets(release["info"]["notes"])
    assert len(listed) == len(set(listed)), f"a Secret is listed twice: {listed}"
    assert set(listed) == referenced_secrets(release)


def test_notes_give_each_secrets_keys_and_the_values_that_name_it() -> None:
    text = notes(("values-production.yaml",))
    assert (
        "platform-mlflow-admin: keys username, password, flask-secret-key "
        "(mlflow.auth.existingSecret, monitoring.mlflowScrape.existingSecret)"
    ) in text
    assert "platform-api-keys: keys api-keys (api.apiKeys.existingSecret)" in text
    assert "platform-cloudflared-token: keys token (cloudflared.existingSecret)" in text
    # Production's monitoring is the operator's: no standalone Grafana, so no admin Secret for it.
    assert "grafana-admin" not in text


def test_notes_secret_keys_are_the_keys_the_objects_read() -> None:
    """Each key the notes list for a Secret is one the rendered objects read from it."""
    release = install(("ci/all-features-values.yaml",))
    read: dict[str, set[str]] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("secretKeyRef"), dict):
                ref = node["secretKeyRef"]
                read.setdefault(ref["name"], set()).add(ref["key"])
            secret = node.get("secret")
            if isinstance(secret, dict) and "secretName" in secret:
                keys = {item["key"] for item in secret.get("items") or []}
                read.setdefault(secret["secretName"], set()).update(keys)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for obj in objects(release):
        walk(obj)
    for line in release["info"]["notes"].splitlines():
        listed = re.match(r"\s+(\S+): keys (.+?) \(", line)
        if listed and listed.group(1) in read:
            keys = set(listed.group(2).split(", "))
            assert read[listed.group(1)] <= keys, line


def test_secrets_the_external_secrets_operator_creates_are_marked() -> None:
    text = notes(("ci/aws-values.yaml",))
    for name in ("platform-api-keys", "platform-mlflow-admin", "platform-mlflow-reader"):
        entry = text.split(f"  {name}: keys", 1)[1].split("\n", 2)[1]
        assert "External Secrets Operator" in entry, name


def test_first_model_steps_point_at_the_guide_section_that_holds_them() -> None:
    text = notes(("values-production.yaml",), ("api.enabled=false",))
    step = re.search(r'docs/kubernetes\.md, step 2,\s+"([^"]+)"', text)
    assert step, text
    headings = re.findall(r"^## (.+)$", GUIDE.read_text(), flags=re.M)
    assert f"2. {step.group(1)}" in headings
    assert "kubectl -n platform port-forward svc/platform-mlflow 5000:5000 &" in text
    assert "make train" in text
    assert "get secret platform-mlflow-admin -o jsonpath='{.data.password}'" in text
    assert "Then install the API: run the same helm upgrade --install without" in text
    # The API is off in this step: nothing to reach or test yet.
    assert "helm test" not in text


def test_first_model_for_an_alias_other_than_production_is_promoted_to_it() -> None:
    assert "make promote VERSION=1 ALIAS=staging" in notes(("values-staging.yaml",))
    assert "make promote" not in notes()


def test_reaching_the_api_sends_a_key_when_keys_are_required() -> None:
    production = notes(("values-production.yaml",))
    assert "get secret platform-api-keys -o jsonpath='{.data.api-keys}'" in production
    assert '-H "Authorization: Bearer $KEY"' in production
    assert "https://api.example.com/predict" in production
    default = notes()
    assert "Authorization" not in default
    assert "kubectl -n platform port-forward svc/platform-api 8000:8000 &" in default


def test_rollback_says_whether_the_model_rolls_back_too() -> None:
    assert "pins a version, so a rollback brings back the previous image and model together" in (
        notes(("values-production.yaml",))
    )
    staging = notes(("values-staging.yaml",))
    assert "follows an alias" in staging
    assert "make rollback ALIAS=staging" in staging


def test_monitoring_access_follows_the_mode() -> None:
    standalone = notes(("ci/standalone-values.yaml",))
    assert "port-forward svc/platform-grafana 3000:3000" in standalone
    operator = notes(("ci/operator-values.yaml",))
    assert "release=kube-prometheus-stack" in operator
    assert "svc/platform-grafana" not in operator


def test_the_guide_section_names_exist() -> None:
    """The notes cite docs/kubernetes.md's steps 1 and 2 by number."""
    headings = re.findall(r"^## (\d)\. ", GUIDE.read_text(), flags=re.M)
    assert headings[:2] == ["1", "2"]
