"""Restart-free model changes: hot reload under load, champion/challenger, shadow, drift."""

import itertools
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.processes import REPO_ROOT, model_server, wait_for
from tests.registry import reset_mlflow_globals
from tests.samples import SETOSA

pytestmark = pytest.mark.integration

MODEL = "iris-classifier"


@dataclass(frozen=True)
class Store:
    tracking_uri: str


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """Three iris versions (different forests) in a store of their own; v1 holds `production`."""
    from training.cli import run
    from training.config import TrainConfig

    uri = f"sqlite:///{tmp_path_factory.mktemp('lifecycle-store') / 'mlflow.db'}"
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        for n_estimators in (10, 20, 30):
            run(TrainConfig(n_estimators=n_estimators))
    finally:
        reset_mlflow_globals()
        if previous is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous
    return Store(uri)


def set_alias(store: Store, alias: str, version: str) -> None:
    from mlflow.tracking import MlflowClient

    MlflowClient(
        tracking_uri=store.tracking_uri, registry_uri=store.tracking_uri
    ).set_registered_model_alias(MODEL, alias, version)


def wait_for_version(url: str, version: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx.get(url + "/model/info").json().get("version") == version:
            return
        time.sleep(0.05)
    raise TimeoutError(f"the server did not switch to version {version}")


def test_follows_a_moving_alias_under_load(store: Store, tmp_path: Path) -> None:
    set_alias(store, "production", "1")
    env = {
        "MLFLOW_TRACKING_URI": store.tracking_uri,
        "MODEL_URI": f"models:/{MODEL}@production",
        "MODEL_POLL_SECONDS": "0.3",
    }
    with model_server(env, tmp_path) as server:
        out, stop = tmp_path / "load.txt", tmp_path / "stop"
        load = subprocess.Popen(
            [sys.executable, "-m", "tests.load_client", server.url, str(out), str(stop)],
            cwd=REPO_ROOT,
        )
        try:
            time.sleep(1.0)
            set_alias(store, "production", "2")
            wait_for_version(server.url, "2")
            time.sleep(1.0)
            set_alias(store, "production", "3")
            wait_for_version(server.url, "3")
            time.sleep(1.0)
        finally:
            stop.touch()
            assert load.wait(30) == 0
        metrics = httpx.get(server.url + "/metrics").text
    records = [line.split() for line in out.read_text().splitlines()]
    assert len(records) > 100
    assert all(status == "200" for _, status, _ in records), [r for r in records if r[1] != "200"][
        :5
    ]
    versions = [version for _, _, version in records]
    changes = [(a, b) for a, b in itertools.pairwise(versions) if a != b]
    assert changes == [("1", "2"), ("2", "3")]  # exactly two swaps, never back
    assert (
        'model_info{name="iris-classifier",source="registry",variant="champion",version="3"} 1.0'
        in metrics
    )
    assert 'version="1"} 1.0' not in metrics.split("# HELP model_info")[1].split("# HELP")[0]


def test_pinned_version_never_moves(store: Store, tmp_path: Path) -> None:
    set_alias(store, "production", "1")
    env = {
        "MLFLOW_TRACKING_URI": store.tracking_uri,
        "MODEL_URI": f"models:/{MODEL}/2",
        "MODEL_POLL_SECONDS": "0.2",
    }
    with model_server(env, tmp_path) as server:
        set_alias(store, "production", "3")
        time.sleep(1.0)
        assert httpx.get(server.url + "/model/info").json()["version"] == "2"


def test_split_sends_a_share_to_the_challenger_that_no_client_can_choose(
    store: Store, tmp_path: Path
) -> None:
    set_alias(store, "production", "1")
    set_alias(store, "challenger", "2")
    env = {
        "MLFLOW_TRACKING_URI": store.tracking_uri,
        "MODEL_URI": f"models:/{MODEL}@production",
        "CHALLENGER_URI": f"models:/{MODEL}@challenger",
        "CHALLENGER_MODE": "split",
        "CHALLENGER_TRAFFIC": "0.3",
    }
    with model_server(env, tmp_path) as server, httpx.Client(base_url=server.url) as client:
        wait_for(server.url + "/v2/models/iris-classifier/versions/2/ready")
        versions = [
            client.post(
                "/predict", json={"features": SETOSA}, headers={"X-Request-ID": f"user-{i}"}
            ).json()["model_version"]
            for i in range(400)
        ]
        share = versions.count("2") / len(versions)
        assert 0.22 < share < 0.38, share
        # A client that found an X-Request-ID answered by one variant cannot keep it: the server
        # draws for every request (both stay with probability 0.7^40 + 0.3^40, under 1e-6).
        again = {
            client.post(
                "/predict", json={"features": SETOSA}, headers={"X-Request-ID": "user-7"}
            ).json()["model_version"]
            for _ in range(40)
        }
        assert again == {"1", "2"}
        info = client.get("/model/info").json()
        assert info["challenger"]["version"] == "2"
        metrics = client.get("/metrics").text
        assert (
            'predictions_total{model_version="2",predicted_class="setosa",variant="challenger"}'
            in metrics
        )


def test_shadow_scores_the_challenger_off_the_response_path(store: Store, tmp_path: Path) -> None:
    set_alias(store, "production", "1")
    set_alias(store, "challenger", "3")
    env = {
        "MLFLOW_TRACKING_URI": store.tracking_uri,
        "MODEL_URI": f"models:/{MODEL}@production",
        "CHALLENGER_URI": f"models:/{MODEL}@challenger",
        "CHALLENGER_MODE": "shadow",
    }
    with model_server(env, tmp_path) as server, httpx.Client(base_url=server.url) as client:
        wait_for(server.url + "/v2/models/iris-classifier/versions/3/ready")
        for _ in range(50):
            assert client.post("/predict", json={"features": SETOSA}).json()["model_version"] == "1"
        batch = [SETOSA, {**SETOSA, "petal length (cm)": 4.9, "petal width (cm)": 1.6}] * 5
        assert client.post("/predict", json={"instances": batch}).status_code == 200
        time.sleep(0.2)
        metrics = client.get("/metrics").text
    counts = {
        outcome: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("model_shadow_agreement_total{")
        for outcome in ("agree", "disagree")
        if f'outcome="{outcome}"' in line
    }
    assert sum(counts.values()) == 60
    assert counts["agree"] >= 50
    assert 'model_inference_seconds_count{variant="challenger"} 51.0' in metrics


def test_drift_report_and_metrics(store: Store, tmp_path: Path) -> None:
    from training.datasets import load_dataset

    set_alias(store, "production", "1")
    iris = load_dataset("iris")
    env = {
        "MLFLOW_TRACKING_URI": store.tracking_uri,
        "MODEL_URI": f"models:/{MODEL}@production",
        "DRIFT_WINDOW": "300",
        "DRIFT_INTERVAL_SECONDS": "0.2",
        "DRIFT_ROWS_PER_REQUEST": "300",  # this test sends its rows as one request
    }
    rng = np.random.default_rng(3)
    with model_server(env, tmp_path) as server, httpx.Client(base_url=server.url) as client:

        def send(rows: np.ndarray) -> None:
            instances = [dict(zip(iris.features, map(float, row), strict=True)) for row in rows]
            assert client.post("/predict", json={"instances": instances}).status_code == 200

        send(iris.X[rng.integers(0, len(iris.X), 300)])
        report = client.get("/drift").json()
        assert report["rows_in_window"] == 300
        assert report["status"] == "ok", report
        shifted = iris.X[rng.integers(0, len(iris.X), 300)].copy()
        shifted[:, 1] += 2 * iris.X[:, 1].std()
        send(shifted)
        report = client.get("/drift").json()
        assert report["features"]["sepal width (cm)"]["status"] == "drift"
        assert report["features"]["sepal length (cm)"]["status"] == "ok"
        assert report["reference_version"] == "1"
        metrics = client.get("/metrics").text
        psi_line = next(
            line
            for line in metrics.splitlines()
            if line.startswith('model_feature_drift_psi{feature="sepal width (cm)"}')
        )
        assert float(psi_line.rsplit(" ", 1)[1]) > 0.25


def test_little_or_lopsided_traffic_raises_no_drift_alarm(store: Store, tmp_path: Path) -> None:
    """One request used to give PSI 6-8 on every feature; one 1000-row request to move it so."""
    from training.datasets import load_dataset

    set_alias(store, "production", "1")
    iris = load_dataset("iris")
    env = {
        "MLFLOW_TRACKING_URI": store.tracking_uri,
        "MODEL_URI": f"models:/{MODEL}@production",
        "DRIFT_INTERVAL_SECONDS": "0.2",
    }
    rng = np.random.default_rng(8)

    def instances(rows: np.ndarray) -> list[dict[str, float]]:
        return [dict(zip(iris.features, map(float, row), strict=True)) for row in rows]

    with model_server(env, tmp_path) as server, httpx.Client(base_url=server.url) as client:
        assert client.post("/predict", json={"features": SETOSA}).status_code == 200
        time.sleep(0.5)  # a drift computation or two
        report = client.get("/drift").json()
        assert report["status"] == "insufficient data"
        assert report["rows_in_window"] == 1
        assert "model_feature_drift_psi{" not in client.get("/metrics").text
        for _ in range(60):  # ordinary traffic, five rows a request: 301 rows in all
            rows = iris.X[rng.integers(0, len(iris.X), 5)]
            assert client.post("/predict", json={"instances": instances(rows)}).status_code == 200
        assert client.get("/drift").json()["status"] in ("ok", "warning")
        far_off = np.full((1000, 4), 7.9)  # every feature at the edge of its training range
        assert client.post("/predict", json={"instances": instances(far_off)}).status_code == 200
        report = client.get("/drift").json()
        assert report["rows_in_window"] == 311
        assert max(f["psi"] for f in report["features"].values()) < 0.25, report
        assert report["status"] != "drift"
