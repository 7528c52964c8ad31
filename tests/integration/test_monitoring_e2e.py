"""The chart's alert rules and dashboards, end to end, against a real Prometheus.

A real `mlflow server` holds iris, trained by `python -m training`: version 1 in production and
version 2 (the same model, registered again) as challenger, scored in shadow. The API server follows both aliases; Prometheus scrapes it every second, started
by scripts/monitor.sh (what `make monitor` runs) with the chart's rule file. Traffic covers normal
and batched predictions, labelled predictions with feedback, the Open Inference Protocol, every client error, requests shed at the
concurrency limit, a promotion (production moves to version 2), a refused version (production
moves to a version without an ONNX model) and drifted rows. Then every PromQL expression of every
dashboard panel must parse and return data, every alert rule must parse and evaluate cleanly, and
the drift alert must go pending or firing.

One change to the rules, made here for time: the test's copy of the rule file has every `for:`
shortened to FOR_IN_TEST, so the drift alert (`for: 30m`) can fire within the test. The
expressions are exactly the chart's.
"""

import importlib.util
import json
import math
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from tests.mlflow_server import (
    QUIET_MLFLOW_ENV,
    MlflowServer,
    mlflow_server,
    stop_session,
)
from tests.processes import REPO_ROOT, ServerProcess, free_port, model_server, wait_for

pytestmark = pytest.mark.integration

MONITORING = REPO_ROOT / "charts" / "platform" / "charts" / "monitoring" / "files"
RULE_FILES = sorted((MONITORING / "rules").glob("*.yaml"))
DASHBOARDS = sorted((MONITORING / "dashboards").glob("*.json"))
JOB = "model-platform-api"
NAME = "iris-classifier"

FOR_IN_TEST = "1s"
# Grafana's $__rate_interval is max($__interval + scrape interval, 4 x scrape interval).
SCRAPE_SECONDS = 1
STEP_SECONDS = 1
RATE_INTERVAL = f"{max(STEP_SECONDS + SCRAPE_SECONDS, 4 * SCRAPE_SECONDS)}s"
DRIFT_WINDOW = 200
MAX_BATCH = 100
MAX_CONCURRENCY = 1
DRIFTED_FEATURE = "petal length (cm)"


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    ref_id: str
    expr: str
    instant: bool

    @property
    def id(self) -> str:
        return f"{self.dashboard}:{self.panel}:{self.ref_id}"


def panel_queries() -> list[PanelQuery]:
    queries = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        panels = [*board["panels"], *(p for row in board["panels"] for p in row.get("panels", []))]
        for panel in panels:
            for target in panel.get("targets", []):
                queries.append(
                    PanelQuery(
                        path.stem,
                        panel["title"],
                        target.get("refId", "A"),
                        target["expr"],
                        bool(target.get("instant")) and not target.get("range"),
                    )
                )
    return queries


def alert_rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


@dataclass
class Stack:
    prometheus: str
    api: "Api"
    started: float  # unix time Prometheus started scraping; panels are queried from here on
    variables: dict[str, str] = field(default_factory=dict)
    drift_alerts: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.prom = httpx.Client(base_url=self.prometheus, timeout=10)

    def query(self, expr: str, **params: str) -> dict[str, Any]:
        """/api/v1/query (or query_range, given start/end/step); the whole answer, even on errors."""
        path = "query_range" if "step" in params else "query"
        answer: dict[str, Any] = self.prom.post(
            f"/api/v1/{path}", data={"query": expr, **params}
        ).json()
        return answer

    def grafana(self, expr: str) -> str:
        """The expression with the dashboard's template variables filled as Grafana would."""
        values = {
            **self.variables,
            "__rate_interval": RATE_INTERVAL,
            "__interval": f"{STEP_SECONDS}s",
            "__range": f"{math.ceil(time.time() - self.started)}s",
        }
        for name in sorted(values, key=len, reverse=True):
            expr = expr.replace(f"${{{name}}}", values[name]).replace(f"${name}", values[name])
        assert "$" not in expr, f"unknown template variable in {expr}"
        return expr


# --- the processes -------------------------------------------------------------------------------


def train(mlflow: MlflowServer, *args: str) -> None:
    env = {**os.environ, **QUIET_MLFLOW_ENV, "MLFLOW_TRACKING_URI": mlflow.url}
    result = subprocess.run(
        [sys.executable, "-m", "training", "--dataset", "iris", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def rules_for_the_test(directory: Path) -> Path:
    """The chart's rules with every `for:` shortened to FOR_IN_TEST; expressions untouched."""
    out = directory / "platform-alerts-for-test.yaml"
    documents = [yaml.safe_load(path.read_text()) for path in RULE_FILES]
    groups = [group for document in documents for group in document["groups"]]
    for group in groups:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = FOR_IN_TEST
    out.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return out


@contextmanager
def prometheus(api_port: int, rules: Path, directory: Path) -> Iterator[str]:
    """Prometheus as `make monitor` runs it, with 1 s intervals and the test's rule file."""
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(api_port),
        "PROMETHEUS_PORT": str(port),
        "MONITOR_DIR": str(directory / "prometheus"),
        "MONITOR_INTERVAL": f"{SCRAPE_SECONDS}s",
        "MONITOR_RULES": str(rules),
    }
    log_path = directory / "prometheus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(REPO_ROOT / "scripts" / "monitor.sh")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_for(f"{url}/-/ready", timeout=30)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\nprometheus log:\n{log_path.read_text()}") from None
        yield url
    finally:
        stop_session(process)


def eventually(check: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


# --- the traffic ---------------------------------------------------------------------------------


class Api:
    """The API server under test, through one keep-alive client (a new client costs ~50 ms)."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.port = int(server.url.rsplit(":", 1)[1])
        self.http = httpx.Client(base_url=server.url, timeout=10)

    def post(
        self, path: str, body: object, content_type: str = "application/json"
    ) -> httpx.Response:
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        return self.http.post(path, content=content, headers={"Content-Type": content_type})

    def get(self, path: str) -> httpx.Response:
        return self.http.get(path)

    def served_version(self) -> str:
        return str(self.get("/model/info").json()["version"])


def iris_rows(features: list[str]) -> list[dict[str, float]]:
    """The iris data set, read from scikit-learn's CSV (importing sklearn.datasets takes seconds)."""
    spec = importlib.util.find_spec("sklearn")
    assert spec is not None
    assert spec.origin is not None
    csv = Path(spec.origin).parent / "datasets" / "data" / "iris.csv"
    lines = csv.read_text().splitlines()[1:]
    return [dict(zip(features, map(float, line.split(",")[:4]), strict=True)) for line in lines]


def predictions(api: Api, rows: list[dict[str, float]]) -> None:
    """Single rows, batches, and Open Inference Protocol requests; all must succeed."""
    for row in rows[::5]:
        assert api.post("/predict", {"features": row}).status_code == 200
    for start in range(0, len(rows), 25):
        assert api.post("/predict", {"instances": rows[start : start + 25]}).status_code == 200
    tensor = {
        "inputs": [
            {
                "name": "input",
                "datatype": "FP32",
                "shape": [10, len(rows[0])],
                "data": [list(row.values()) for row in rows[:10]],
            }
        ]
    }
    response = api.post(f"/v2/models/{NAME}/infer", tensor)
    assert response.status_code == 200, response.text


def feedback(api: Api, rows: list[dict[str, float]]) -> None:
    """Labelled predictions (the CSV's first 50 rows are setosa) and one unknown id."""
    for i, row in enumerate(rows[:30]):
        response = api.http.post(
            "/predict", json={"features": row}, headers={"X-Request-ID": f"labelled-{i}"}
        )
        assert response.status_code == 200
    items = [{"request_id": f"labelled-{i}", "label": "setosa"} for i in range(30)]
    eventually(
        lambda: api.post("/feedback", {"feedback": items}).json().get("accepted") == 30,
        "feedback to find the recorded predictions",
    )
    assert api.post("/feedback", {"request_id": "never-made", "label": "setosa"}).status_code == 404
    eventually(lambda: "model_live_labels{" in api.get("/metrics").text, "live quality")


def client_errors(api: Api, row: dict[str, float]) -> None:
    cases: dict[int, Callable[[], httpx.Response]] = {
        400: lambda: api.post("/predict", b'{"features": '),
        413: lambda: api.post("/predict", {"instances": [row] * (MAX_BATCH + 1)}),
        415: lambda: api.post("/predict", {"features": row}, content_type="text/plain"),
        422: lambda: api.post("/predict", {"features": {**row, DRIFTED_FEATURE: "long"}}),
        404: lambda: api.get("/no-such-route"),
    }
    for status, send in cases.items():
        for _ in range(3):
            response = send()
            assert response.status_code == status, response.text


def shed_one(api: Api, row: dict[str, float]) -> None:
    """Hold one request mid-body, so MAX_CONCURRENCY (1) is reached and the next one is shed.

    A burst of fast clients does not do it reliably: a request whose body has arrived is in
    flight only until the next turn of the event loop, when its batch is scored.
    """
    body = orjson.dumps({"features": row})
    head = (
        f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", api.port), timeout=10) as held:
        held.sendall(head + body[:5])
        # A probe read in the same loop turn as the held request's headers could be counted
        # first and get the held request shed instead; give the server a moment to take it in.
        time.sleep(0.1)
        eventually(
            lambda: api.post("/predict", {"features": row}).status_code == 503,
            "a request to be shed",
        )
        held.sendall(body[5:])
        reply = held.recv(65536)
    assert reply.startswith(b"HTTP/1.1 200"), reply


def drifted(rows: list[dict[str, float]], shift: float) -> list[dict[str, float]]:
    return [{**row, DRIFTED_FEATURE: row[DRIFTED_FEATURE] + shift} for row in rows]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("monitoring-e2e")
    with mlflow_server(root) as mlflow:
        train(mlflow)  # version 1, alias production (the first version gets it)
        # Version 2, the challenger: the same logged model registered again (a second training
        # run would cost ~20 s and tell the dashboards nothing new).
        first = mlflow.model_version(NAME, "1")
        model_id = first["source"].removeprefix("models:/")
        mlflow.set_alias(NAME, "challenger", mlflow.create_version(NAME, model_id, first["run_id"]))
        env = {
            "MLFLOW_TRACKING_URI": mlflow.url,
            "MODEL_URI": f"models:/{NAME}@production",
            "CHALLENGER_URI": f"models:/{NAME}@challenger",
            "CHALLENGER_MODE": "shadow",
            "MODEL_POLL_SECONDS": "1",
            "DRIFT_INTERVAL_SECONDS": "1",
            "DRIFT_WINDOW": str(DRIFT_WINDOW),
            "DRIFT_MIN_ROWS": str(MAX_BATCH),
            "DRIFT_ROWS_PER_REQUEST": str(MAX_BATCH),  # the drift below comes in full batches
            "MAX_BATCH": str(MAX_BATCH),
            "MAX_CONCURRENCY": str(MAX_CONCURRENCY),
            "RECORD_PREDICTIONS": "true",
            "RECORD_FLUSH_SECONDS": "0.1",
            "QUALITY_INTERVAL_SECONDS": "1",
        }
        rules = rules_for_the_test(root)
        with model_server(env, root) as server:
            api = Api(server)
            with prometheus(api.port, rules, root) as url, api.http:
                stack = Stack(url, api, time.time())
                with stack.prom:
                    yield drive(stack, mlflow, first)


def drive(stack: Stack, mlflow: MlflowServer, first: dict[str, Any]) -> Stack:
    api = stack.api
    eventually(
        lambda: "version" in api.get("/model/info").json().get("challenger", {}),
        "the challenger to load",
    )
    eventually(lambda: stack.query(f'up{{job="{JOB}"}} == 1')["data"]["result"], "a scrape")
    rows = iris_rows(api.get("/model/info").json()["features"])
    predictions(api, rows)
    feedback(api, rows)
    client_errors(api, rows[0])
    # rate() sees a new series only from its second sample: shed twice, a scrape apart.
    shed_one(api, rows[0])
    time.sleep(1.5 * SCRAPE_SECONDS)
    shed_one(api, rows[0])

    # Promotion: production moves to the challenger's version; the server follows the alias
    # within MODEL_POLL_SECONDS.
    mlflow.set_alias(NAME, "production", "2")
    eventually(lambda: api.served_version() == "2", "version 2 to be served")
    predictions(api, rows)

    # A bad promotion: a version whose model has no ONNX file is refused, version 2 keeps serving.
    tags = {t["key"]: t["value"] for t in first["tags"]}
    sklearn_model_id = tags["sklearn_model_uri"].removeprefix("models:/")
    broken = mlflow.create_version(NAME, sklearn_model_id, first["run_id"])
    mlflow.set_alias(NAME, "production", broken)
    eventually(
        lambda: 'model_reload_failures_total{variant="champion"}' in api.get("/metrics").text,
        "the bad version to be refused",
    )
    assert api.served_version() == "2"

    # Drift: one feature moved by several standard deviations (petal length: std 1.77 cm).
    shifted = drifted(rows, 4 * 1.77)
    for start in range(0, DRIFT_WINDOW + MAX_BATCH, MAX_BATCH):
        batch = shifted[start % len(shifted) :][:MAX_BATCH]
        assert api.post("/predict", {"instances": batch}).status_code == 200

    def drift_alerts() -> list[dict[str, Any]]:
        alerts = stack.prom.get("/api/v1/alerts").json()["data"]["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == "ModelFeatureDrift"]

    stack.drift_alerts = eventually(drift_alerts, "ModelFeatureDrift to go pending or firing")
    time.sleep(2 * SCRAPE_SECONDS)  # one more scrape after the last request

    # The dashboards' variables, resolved the way Grafana does (label_values of their queries).
    for name in ("namespace", "instance"):
        selector = f'up{{job="{JOB}", namespace=~"{stack.variables.get("namespace", ".*")}"}}'
        answer = stack.prom.get(f"/api/v1/label/{name}/values", params={"match[]": selector})
        # Grafana escapes regex characters, and doubles the backslash inside a PromQL string.
        escaped = (re.escape(v).replace("\\", "\\\\") for v in answer.json()["data"])
        stack.variables[name] = "|".join(escaped)
    return stack


# --- the checks ----------------------------------------------------------------------------------


def test_dashboard_variables_find_the_local_api(stack: Stack) -> None:
    assert stack.variables["namespace"] == "local"
    assert stack.variables["instance"] == rf"127\\.0\\.0\\.1:{stack.api.port}"


@pytest.mark.parametrize("query", panel_queries(), ids=lambda q: q.id)
def test_every_panel_query_returns_data(stack: Stack, query: PanelQuery) -> None:
    expr = stack.grafana(query.expr)
    instant = stack.query(expr)
    assert instant["status"] == "success", f"{expr}: {instant.get('error')}"
    if query.instant:
        assert instant["data"]["result"], f"no data for {expr}"
        return
    # A time series panel: Grafana asks for the range; some point must be a number.
    end = time.time()
    answer = stack.query(expr, start=str(stack.started), end=str(end), step=f"{STEP_SECONDS}s")
    assert answer["status"] == "success", f"{expr}: {answer.get('error')}"
    values = [float(v) for series in answer["data"]["result"] for _, v in series["values"]]
    assert any(math.isfinite(v) for v in values), f"no data for {expr}: {answer['data']}"


def test_error_rate_panel_shows_healthy_routes_as_zero_and_shed_requests_as_errors(
    stack: Stack,
) -> None:
    """/predict never answered 5xx: 0 on the panel, not a gap. Shed requests are all 503."""
    panel = next(q for q in panel_queries() if q.panel == "Error rate (5xx share) by route")
    answer = stack.query(
        stack.grafana(panel.expr),
        start=str(stack.started),
        end=str(time.time()),
        step=f"{STEP_SECONDS}s",
    )
    by_route = {
        series["metric"]["route"]: [float(v) for _, v in series["values"]]
        for series in answer["data"]["result"]
    }
    predict = [v for v in by_route["/predict"] if math.isfinite(v)]
    assert predict, by_route
    assert set(predict) == {0.0}
    assert max(v for v in by_route["shed"] if math.isfinite(v)) == 1.0


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r.get("alert") or r.get("record"))
def test_every_alert_rule_parses_and_evaluates(stack: Stack, rule: dict[str, Any]) -> None:
    answer = stack.query(rule["expr"])
    assert answer["status"] == "success", f"{rule['expr']}: {answer.get('error')}"
    loaded = stack.prom.get("/api/v1/rules").json()["data"]["groups"]
    name = rule.get("alert") or rule.get("record")
    found = [r for group in loaded for r in group["rules"] if r["name"] == name]
    assert len(found) == 1, f"{name} is not loaded exactly once: {found}"
    assert found[0]["health"] == "ok", f"{name}: {found[0].get('lastError')}"


def test_drift_alert_goes_pending_or_firing_on_drifted_traffic(stack: Stack) -> None:
    alerts = {a["labels"]["feature"]: a for a in stack.drift_alerts}
    assert DRIFTED_FEATURE in alerts, alerts
    alert = alerts[DRIFTED_FEATURE]
    assert alert["state"] in {"pending", "firing"}
    assert alert["labels"]["namespace"] == "local"
    assert alert["labels"]["severity"] == "warning"
    assert float(alert["value"]) > 0.2
