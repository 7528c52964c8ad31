"""The chart's schema refuses every value the server would refuse at start.

Each API ConfigMap key the server reads as a number has, in values.schema.json, a range inside the
server's own (server/settings.py), so `helm install` fails instead of the Pods crash-looping.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from server.settings import NUMERIC_RANGES
from tests.chart.conftest import CHART

pytestmark = pytest.mark.chart

CONFIGMAP = CHART / "charts" / "api" / "templates" / "configmap.yaml"


def configmap_values() -> dict[str, str]:
    """Environment variable -> the values path under `api` that sets it."""
    mapping: dict[str, str] = {}
    prefix = ""
    for line in CONFIGMAP.read_text().splitlines():
        scope = re.search(r"with \.Values\.([\w.]+)", line)
        if scope:
            prefix = scope.group(1) + "."
        key = re.match(r"^\s+([A-Z][A-Z0-9_]+): \{\{ (\.Values)?\.([\w.]+)", line)
        if key:
            path = key.group(3) if key.group(2) else prefix + key.group(3)
            mapping[key.group(1)] = path
    return mapping


def schema_node(path: str) -> dict[str, Any]:
    node: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
    node = node["properties"]["api"]
    for part in path.split("."):
        node = node["properties"][part]
    found: dict[str, Any] = node
    return found


def numeric_branch(node: dict[str, Any]) -> dict[str, Any]:
    if node.get("type") in ("integer", "number"):
        return node
    branches: list[dict[str, Any]] = node.get("anyOf", [])
    for branch in branches:
        if branch.get("type") in ("integer", "number"):
            return branch
    raise AssertionError(f"no numeric type in {node}")


MAPPED = sorted((env, path) for env, path in configmap_values().items() if env in NUMERIC_RANGES)


def test_the_configmap_mapping_is_read() -> None:
    names = {env for env, _ in MAPPED}
    assert {"MAX_BATCH", "DRIFT_WINDOW", "QUALITY_MARGIN", "RECORD_BUFFER_ROWS"} <= names


@pytest.mark.parametrize(("env", "path"), MAPPED)
def test_the_schema_range_is_within_the_servers(env: str, path: str) -> None:
    low, high = NUMERIC_RANGES[env]
    node = numeric_branch(schema_node(path))
    assert "minimum" in node, f"api.{path} ({env}) has no minimum"
    assert "maximum" in node, f"api.{path} ({env}) has no maximum"
    assert low <= node["minimum"] <= node["maximum"] <= high, (
        f"api.{path} allows {node['minimum']}..{node['maximum']}; {env} takes {low}..{high}"
    )
