"""Alert rules and dashboards: promtool checks and unit tests, contract metric names, dashboard
variables. The rules and dashboards live once, in charts/platform/charts/monitoring/files/."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.conftest import CHART, find, render
from tests.chart.contract_metrics import PROMETHEUS_SYNTHETIC, SERVER_METRICS

pytestmark = pytest.mark.chart

FILES = CHART / "charts" / "monitoring" / "files"
RULES = sorted((FILES / "rules").glob("*.yaml"))
DASHBOARDS = sorted((FILES / "dashboards").glob("*.json"))
PROMTOOL_TESTS = Path(__file__).parent / "promtool"
REQUIRED_ALERTS = {
    "ModelApiHighErrorRate",
    "ModelApiHighLatency",
    "ModelHighInferenceTime",
    "ModelApiDown",
    "ModelNotReady",
    "ModelReloadFailing",
    "ModelFeatureDrift",
    "ModelPredictionDrift",
    "ModelLiveAccuracyBelowHeldOut",
    "ModelLiveErrorAboveHeldOut",
}

PROMQL_WORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "inf", "nan", "le",
}  # fmt: skip


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool missing: run `make system-deps` (Debian package prometheus)"
    return path


def alerts() -> list[dict[str, Any]]:
    return [
        rule
        for path in RULES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (histogram series map to their family)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\$\w+", "", text)  # Grafana variables
    names = set()
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][\w:]*)\b(?!\s*\()", text):
        word = m.group(1)
        if word.lower() in PROMQL_WORDS or re.fullmatch(r"\d+\w*", word):
            continue
        names.add(re.sub(r"_(bucket|sum|count)$", "", word) if word.endswith("_bucket") else word)
    return names


def dashboard_exprs(path: Path) -> list[str]:
    board = json.loads(path.read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            exprs.append(re.sub(r"^label_values\((.*),\s*\w+\)$", r"\1", query))
    return exprs


def test_promtool_check_rules() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", *map(str, RULES)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_rules_as_rendered_for_the_standalone_prometheus(tmp_path: Path) -> None:
    objs = render(["ci/standalone-values.yaml"])
    configmap = find(objs, "ConfigMap", "platform-prometheus-rules")
    for name, text in configmap["data"].items():
        (tmp_path / name).write_text(text)
    result = subprocess.run(
        [promtool(), "check", "rules", *map(str, tmp_path.iterdir())],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests() -> None:
    tests = sorted(PROMTOOL_TESTS.glob("*.yaml"))
    result = subprocess.run(
        [promtool(), "test", "rules", *map(str, tests)],
        capture_output=True,
        text=True,
        cwd=PROMTOOL_TESTS,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_unit_tested_firing_and_silent() -> None:
    fired: dict[str, int] = {}
    silent: dict[str, int] = {}
    for path in PROMTOOL_TESTS.glob("*.yaml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case["alert_rule_test"]:
                bucket = fired if check["exp_alerts"] else silent
                bucket[check["alertname"]] = bucket.get(check["alertname"], 0) + 1
    for rule in alerts():
        name = rule["alert"]
        assert fired.get(name, 0) >= 1, f"{name} has no firing test"
        assert silent.get(name, 0) >= 2, f"{name} needs a healthy and a just-under silent test"


def test_alerts_cover_the_issue_and_tell_on_call_what_to_do() -> None:
    rules = alerts()
    assert {r["alert"] for r in rules} >= REQUIRED_ALERTS
    for rule in rules:
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "")), f"{rule['alert']} needs a for:"
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        assert rule["annotations"]["summary"]
        assert len(rule["annotations"]["description"].split()) >= 15, rule["alert"]


def test_rules_use_only_contract_metrics() -> None:
    known = SERVER_METRICS | PROMETHEUS_SYNTHETIC
    for rule in alerts():
        names = metric_names(rule["expr"])
        assert names, rule["alert"]
        assert names <= known, f"{rule['alert']}: {names - known}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboards_use_only_contract_metrics(path: Path) -> None:
    known = SERVER_METRICS | PROMETHEUS_SYNTHETIC
    for expr in dashboard_exprs(path):
        names = metric_names(expr)
        assert names, expr
        assert names <= known, f"{expr}: {names - known}"


def test_metric_name_extraction() -> None:
    """The cross-check above sees through functions, aggregations, matchers and histograms."""
    expr = (
        "histogram_quantile(0.95, sum by (le, route) ("
        'rate(http_request_duration_seconds_bucket{job="x", route=~"/p|/v2/.*"}[5m])'
        ")) > on (namespace) group_left max without (pod) (model_ready)"
    )
    assert metric_names(expr) == {"http_request_duration_seconds", "model_ready"}
    assert metric_names('absent(up{a="b"}) or sum(bogus_metric_total)') == {
        "up",
        "bogus_metric_total",
    }


def test_every_contract_metric_is_on_a_dashboard() -> None:
    used = {name for path in DASHBOARDS for e in dashboard_exprs(path) for name in metric_names(e)}
    assert used >= SERVER_METRICS, SERVER_METRICS - used


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_variables_and_no_hard_coded_datasource(path: Path) -> None:
    board = json.loads(path.read_text())
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert {"namespace", "instance"} <= set(variables)
    text = path.read_text()
    uids = set(re.findall(r'"uid":\s*"([^"]*)"', text)) - {board["uid"]}
    assert uids == {"${datasource}"}, uids
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            assert 'namespace=~"$namespace"' in target["expr"], target["expr"]


def test_dashboards_show_what_operators_ask() -> None:
    titles = " | ".join(
        p["title"].lower() for path in DASHBOARDS for p in json.loads(path.read_text())["panels"]
    )
    for words in (
        "request rate by route and status",
        "error rate",
        "p50 / p95 / p99",
        "inference time",
        "predictions by class",
        "predictions by model version",
        "model version served",
        "loaded at",
        "traffic split",
        "shadow agreement",
        "feature drift",
        "prediction drift",
        "cpu",
        "memory",
    ):
        assert words in titles, words


def test_namespace_label_is_kept_by_both_scrape_modes() -> None:
    """Rules aggregate by namespace; standalone relabels it, the operator sets it itself."""
    config = find(render(["ci/standalone-values.yaml"]), "ConfigMap", "platform-prometheus")
    prom = yaml.safe_load(config["data"]["prometheus.yml"])
    api_job = next(j for j in prom["scrape_configs"] if j["job_name"] == "model-platform-api")
    targets = {r.get("target_label") for r in api_job["relabel_configs"]}
    assert {"namespace", "pod"} <= targets
    # every API pod of this release's namespace, through the headless Service
    assert api_job["dns_sd_configs"][0]["names"] == ["platform-api-pods.platform.svc"]
