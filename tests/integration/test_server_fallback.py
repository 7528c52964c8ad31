"""Registry outages at start-up: the fallback model, no model at all, and late readiness."""

import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import TrainedStore
from tests.processes import REPO_ROOT, free_port, model_server, wait_for
from tests.samples import SETOSA

pytestmark = pytest.mark.integration


def unreachable_registry() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there


def test_fallback_model_when_registry_is_down(trained_store: TrainedStore, tmp_path: Path) -> None:
    env = {
        "MLFLOW_TRACKING_URI": unreachable_registry(),
        "MODEL_FALLBACK_PATH": str(trained_store.exported["iris-classifier"]),
        "REGISTRY_TIMEOUT_SECONDS": "1",
    }
    with model_server(env, tmp_path) as server:
        info = httpx.get(server.url + "/model/info").json()
        assert info["source"] == "fallback"
        assert info["version"] == "1"
        response = httpx.post(server.url + "/predict", json={"features": SETOSA})
        assert response.json()["prediction"] == "setosa"
        metrics = httpx.get(server.url + "/metrics").text
        assert (
            'model_info{name="iris-classifier",source="fallback",variant="champion",version="1"} 1.0'
            in metrics
        )
        assert "serving the fallback model" in server.log()


def test_no_model_still_starts_and_says_why(tmp_path: Path) -> None:
    env = {"MLFLOW_TRACKING_URI": unreachable_registry(), "REGISTRY_TIMEOUT_SECONDS": "1"}
    with model_server(env, tmp_path, wait="/health") as server:
        assert httpx.get(server.url + "/health").status_code == 200
        ready = wait_for(server.url + "/ready", status=503)
        assert ready.json()["model_loaded"] is False
        assert "cannot reach MLflow" in ready.json()["reason"]
        predict = httpx.post(server.url + "/predict", json={"features": SETOSA})
        assert predict.status_code == 503
        assert "no model loaded" in predict.json()["detail"]
        assert httpx.get(server.url + "/v2/health/ready").status_code == 503
        assert httpx.get(server.url + "/model/info").status_code == 503


def test_becomes_ready_when_the_model_appears(trained_store: TrainedStore, tmp_path: Path) -> None:
    target = tmp_path / "model-arrives-later"
    with model_server({"MODEL_URI": str(target)}, tmp_path, wait="/health") as server:
        assert wait_for(server.url + "/ready", status=503).json()["model_loaded"] is False
        shutil.copytree(trained_store.exported["iris-classifier"], target)
        wait_for(server.url + "/ready", status=200, timeout=10)
        assert httpx.post(server.url + "/predict", json={"features": SETOSA}).status_code == 200


def test_refuses_a_model_whose_metadata_disagrees(
    trained_store: TrainedStore, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(trained_store.exported["iris-classifier"], broken)
    wine = trained_store.exported["wine-classifier"]
    shutil.copyfile(
        wine / "metadata.json", broken / "metadata.json"
    )  # 13 features for a 4-input graph
    with model_server({"MODEL_URI": str(broken)}, tmp_path, wait="/health") as server:
        reason = wait_for(server.url + "/ready", status=503).json()["reason"]
        assert "shape" in reason
        assert "13 features" in reason


def test_bad_setting_is_a_one_line_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "server"],
        cwd=REPO_ROOT,
        env={"PATH": "/usr/bin:/bin", "MAX_BATCH": "lots"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "error: MAX_BATCH must be a number, got 'lots'"


def test_serving_imports_neither_sklearn_pandas_nor_mlflow(trained_store: TrainedStore) -> None:
    code = f"""
import asyncio, sys
from server.app import create_app
from server.settings import Settings
settings = Settings(model_uri="models:/iris-classifier@production", tracking_uri={trained_store.tracking_uri!r})
app = create_app(settings)
models = app.state.models
asyncio.run(models.champion._sync_with_registry())
assert models.champion.model is not None, models.champion.status
print(sorted({{m.split('.')[0] for m in sys.modules}} & {{'sklearn', 'pandas', 'mlflow', 'skl2onnx'}}))
"""
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_registry_without_the_pinned_version_is_not_ready_despite_a_fallback(
    trained_store: TrainedStore, tmp_path: Path
) -> None:
    """The baked-in model covers an unreachable registry, not a version nobody registered."""
    env = {
        "MLFLOW_TRACKING_URI": trained_store.tracking_uri,
        "MODEL_URI": "models:/iris-classifier/99",
        "MODEL_FALLBACK_PATH": str(trained_store.exported["iris-classifier"]),
        "MODEL_RETRY_SECONDS": "0.2",
    }
    with model_server(env, tmp_path, wait="/health") as server:
        deadline = time.monotonic() + 30
        ready = wait_for(server.url + "/ready", status=503)
        while ready.json()["reason"] == "loading" and time.monotonic() < deadline:
            time.sleep(0.1)
            ready = wait_for(server.url + "/ready", status=503)
        assert ready.json()["model_loaded"] is False
        assert "no such version" in ready.json()["reason"]
        time.sleep(1)  # several retries later: still not the fallback
        assert wait_for(server.url + "/ready", status=503).json()["model_loaded"] is False
        assert httpx.get(server.url + "/model/info").status_code == 503
        assert 'source="fallback"' not in httpx.get(server.url + "/metrics").text
        assert "serving the fallback model" not in server.log()
