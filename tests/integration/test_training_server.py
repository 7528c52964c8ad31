"""`python -m training` against a real `mlflow server` over HTTP, checked from a fresh client."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import onnxruntime as ort
import pytest
from mlflow.tracking import MlflowClient

from tests.processes import free_port
from tests.registry import reset_mlflow_globals, snapshot, version_run
from training import estimator
from training.config import TrainConfig
from training.datasets import load_dataset
from training.tracking import REPO_ROOT

pytestmark = pytest.mark.integration

NAME = "integration-iris"


def run_training(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_TRACKING_URI"] = url
    return subprocess.run(
        [sys.executable, "-m", "training", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


@pytest.fixture(scope="module")
def trained_twice(mlflow_server: str) -> str:
    for _ in range(2):
        result = run_training(mlflow_server, f"--model-name={NAME}")
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
    return mlflow_server


@pytest.fixture
def client(trained_twice: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[MlflowClient]:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained_twice)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", trained_twice)
    yield MlflowClient(tracking_uri=trained_twice, registry_uri=trained_twice)
    reset_mlflow_globals()


def test_production_alias_on_the_first_version_only(client: MlflowClient) -> None:
    registered = snapshot(client, NAME)
    assert registered.versions == ("1", "2")
    assert registered.aliases == {"production": "1"}
    assert json.loads(registered.tags["features"])[0] == "sepal length (cm)"


def test_same_seed_gives_the_same_metrics(client: MlflowClient) -> None:
    first = version_run(client, NAME, "1").data.metrics
    assert first == version_run(client, NAME, "2").data.metrics
    assert set(first) == {"accuracy", "f1_macro", "log_loss"}


def test_the_registered_onnx_reproduces_the_logged_accuracy(
    client: MlflowClient, trained_twice: str, tmp_path: Path
) -> None:
    local = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{NAME}/1", dst_path=str(tmp_path), tracking_uri=trained_twice
        )
    )
    assert (local / "model.onnx").is_file()
    metadata = json.loads((local / "extra_files" / "metadata.json").read_text())
    drift = json.loads((local / "extra_files" / "drift_reference.json").read_text())
    dataset = load_dataset("iris")
    assert metadata["features"] == dataset.features
    assert metadata["classes"] == dataset.classes
    assert metadata["task"] == "classification"
    assert list(drift["features"]) == dataset.features

    split = estimator.split_dataset(dataset, TrainConfig())  # the defaults training used
    session = ort.InferenceSession(str(local / "model.onnx"), providers=["CPUExecutionProvider"])
    (labels,) = session.run([metadata["outputs"]["label"]], {metadata["input_name"]: split.X_test})
    accuracy = float(np.mean(labels == split.y_test))
    logged = version_run(client, NAME, "1").data.metrics["accuracy"]
    assert accuracy == pytest.approx(logged, abs=1e-12)
    assert metadata["metrics"]["accuracy"] == logged


def test_other_features_under_the_same_name_change_nothing(
    client: MlflowClient, trained_twice: str
) -> None:
    before = snapshot(client, NAME)
    result = run_training(trained_twice, f"--model-name={NAME}", "--dataset=wine")
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: registered model '{NAME}' expects features [")
    assert result.stderr.count("\n") == 1
    assert snapshot(client, NAME) == before


def test_bad_input_in_a_real_process(trained_twice: str) -> None:
    result = run_training(trained_twice, "--n-estimators=0")
    assert (result.returncode, result.stderr) == (
        2,
        "error: --n-estimators must be at least 1, got 0\n",
    )
    assert result.stdout == ""


def test_unreachable_server_in_a_real_process() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = run_training(url)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: cannot reach the MLflow tracking server at {url}: ")
    assert result.stderr.count("\n") == 1
