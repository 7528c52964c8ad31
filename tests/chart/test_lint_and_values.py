"""helm lint --strict for each values file and monitoring mode; the values schema and docs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.chart.conftest import CHART, helm, template_args

pytestmark = pytest.mark.chart

VALUES_FILES = ["values.yaml", "values-staging.yaml", "values-production.yaml"]
MODES = ["ci/standalone-values.yaml", "ci/operator-values.yaml"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("values", VALUES_FILES)
def test_lint_strict(values: str, mode: str) -> None:
    result = helm(
        "lint",
        "--strict",
        str(CHART),
        "-f",
        str(CHART / values),
        "-f",
        str(CHART / mode),
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_lint_strict_all_features() -> None:
    result = helm("lint", "--strict", str(CHART), "-f", str(CHART / "ci/all-features-values.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr


SCHEMA_ERRORS = [
    (["api.replicaCuont=2"], "additional properties 'replicaCuont' not allowed"),
    (["api.replicaCount=-1"], "at '/api/replicaCount': minimum: got -1, want 0"),
    (["cloudflared.replicaCount=-2"], "at '/cloudflared/replicaCount': minimum"),
    (["api.replicaCount=two"], "at '/api/replicaCount': got string, want integer"),
    (["mlflow.persistance.size=1Gi"], "additional properties 'persistance' not allowed"),
    (["api.image.tag=latest"], "at '/api/image/tag'"),
    (["monitoring.mode=prometheus"], "at '/monitoring/mode'"),
    (["api.challenger.traffic=2"], "at '/api/challenger/traffic': maximum: got 2, want 1"),
    (["api.model.uri=iris"], "at '/api/model/uri'"),
    (["mlflow.artifacts.s3.prefix=/mlflow/"], "at '/mlflow/artifacts/s3/prefix'"),
    (["mlflow.artifacts.s3.bucket=My_Bucket"], "at '/mlflow/artifacts/s3/bucket'"),
    (["externalSecrets.secretStore.service=Vault"], "at '/externalSecrets/secretStore/service'"),
]
# Checks that need several values together fail the render with `fail`. `helm lint` reports
# those only as INFO (lint mode makes `fail` non-fatal), so they are checked on `helm template`,
# which is what `helm install` runs.
RENDER_ERRORS = [
    (["api.challenger.mode=split"], "api.challenger.uri is required"),
    (["mlflow.artifacts.type=s3"], "mlflow.artifacts.s3.bucket is required"),
    (["mlflow.artifacts.s3.existingSecret=keys"], "but mlflow.artifacts.type is not s3"),
    (["externalSecrets.enabled=true"], "externalSecrets.secrets is empty"),
    (["mlflow.auth.enabled=true"], "mlflow.auth.existingSecret"),
    (["cloudflared.enabled=true"], "cloudflared.existingSecret (key token) is required"),
    (["monitoring.grafana.existingSecret="], "monitoring.grafana.existingSecret"),
]


@pytest.mark.parametrize(("sets", "message"), SCHEMA_ERRORS + RENDER_ERRORS)
def test_bad_values_fail_the_render_with_a_clear_message(sets: list[str], message: str) -> None:
    result = helm(*template_args(sets=sets))
    assert result.returncode != 0, f"helm template accepted {sets}"
    assert message in result.stderr, result.stderr


@pytest.mark.parametrize(("sets", "message"), SCHEMA_ERRORS)
def test_bad_values_fail_lint(sets: list[str], message: str) -> None:
    result = helm("lint", "--strict", str(CHART), *[a for s in sets for a in ("--set", s)])
    assert result.returncode != 0, f"helm lint accepted {sets}"
    assert message in result.stdout + result.stderr, result.stdout + result.stderr


def _schema() -> dict[str, object]:
    return dict(json.loads((CHART / "values.schema.json").read_text()))


def _merge(base: object, over: object) -> object:
    if isinstance(base, dict) and isinstance(over, dict):
        return {k: _merge(base.get(k), over[k]) if k in over else base[k] for k in base | over}
    return over


def test_every_values_file_matches_the_schema() -> None:
    """Each file merged over values.yaml, as Helm merges them, is valid."""
    validator = jsonschema.Draft7Validator(_schema())
    base = yaml.safe_load((CHART / "values.yaml").read_text())
    scenarios = [str(p.relative_to(CHART)) for p in (CHART / "ci").glob("*.yaml")]
    for name in [*VALUES_FILES, *scenarios]:
        merged = _merge(base, yaml.safe_load((CHART / name).read_text()) or {})
        errors = list(validator.iter_errors(merged))
        assert not errors, f"{name}: {[e.message for e in errors]}"


def test_schema_rejects_unknown_keys_everywhere() -> None:
    """Every schema object with named properties is closed (not global: Helm fills it)."""

    def walk(node: object, path: str) -> None:
        if isinstance(node, dict):
            if "properties" in node and not path.endswith("/global"):
                assert node.get("additionalProperties") is False, f"{path} accepts unknown keys"
            for key, child in node.items():
                if key == "properties" and isinstance(child, dict):
                    for prop, sub in child.items():
                        walk(sub, f"{path}/{prop}")
                elif isinstance(child, dict):
                    walk(child, path)

    walk(_schema(), "")


def _leaf_keys_without_docs(text: str) -> list[str]:
    """Keys of values.yaml with neither their own `# --` comment nor one on an ancestor."""
    missing: list[str] = []
    stack: list[tuple[int, str, bool]] = []  # (indent, key, documented)
    lines = text.splitlines()
    key_re = re.compile(r"^(\s*)([A-Za-z0-9_.-]+):(.*)$")
    for i, line in enumerate(lines):
        m = key_re.match(line)
        if not m:
            continue
        indent, key, rest = len(m.group(1)), m.group(2), m.group(3).strip()
        while stack and stack[-1][0] >= indent:
            stack.pop()
        j = i - 1
        while j >= 0 and lines[j].lstrip().startswith("#") and "# --" not in lines[j]:
            j -= 1
        own = j >= 0 and lines[j].strip().startswith("# --")
        documented = own or any(d for _, _, d in stack)
        is_leaf = rest != ""
        path = ".".join([k for _, k, _ in stack] + [key])
        if is_leaf and not documented:
            missing.append(path)
        stack.append((indent, key, documented))
    return missing


def test_every_value_is_documented_helm_docs_style() -> None:
    text = (CHART / "values.yaml").read_text()
    assert text.startswith("# yaml-language-server: $schema=values.schema.json")
    assert _leaf_keys_without_docs(text) == []


def test_environment_files_only_override_known_keys() -> None:
    """Per-environment files hold only differences: known keys, each set to a non-default value."""
    base = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(over: object, ref: object, path: str) -> None:
        if isinstance(over, dict):
            assert isinstance(ref, dict), f"{path} is not a mapping in values.yaml"
            for k, v in over.items():
                assert k in ref, f"{path}.{k} is not in values.yaml"
                walk(v, ref[k], f"{path}.{k}")
        else:
            assert over != ref, f"{path} repeats the default {ref!r}"

    for name in VALUES_FILES[1:]:
        walk(yaml.safe_load((CHART / name).read_text()), base, Path(name).stem)
