"""Registration in a local SQLite store: aliases, tags, artifacts, and undo on failure."""

import json
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from tests.registry import snapshot
from tests.training.conftest import Train
from training import registration
from training.errors import TrainingError
from training.tracking import connect

IRIS_FEATURES = [
    "sepal length (cm)",
    "sepal width (cm)",
    "petal length (cm)",
    "petal width (cm)",
]


def test_a_missing_model_is_compatible(client: MlflowClient) -> None:
    assert (
        registration.check_compatible(client, "nothing-here", IRIS_FEATURES, "classification")
        is False
    )


def test_first_version_is_production_and_records_the_inputs(
    train: Train, client: MlflowClient
) -> None:
    assert train("--model-name=m").code == 0
    model = client.get_registered_model("m")
    assert snapshot(client, "m").aliases == {"production": "1"}
    assert json.loads(model.tags["features"]) == IRIS_FEATURES
    assert model.tags["task"] == "classification"
    version = client.get_model_version("m", "1")
    assert version.tags["dataset"] == "iris"
    assert version.tags["task"] == "classification"
    assert version.tags["sklearn_model_uri"].startswith("models:/")
    assert registration.check_compatible(client, "m", IRIS_FEATURES, "classification") is True


def test_later_versions_leave_the_alias_alone(train: Train, client: MlflowClient) -> None:
    assert train("--model-name=m").code == 0
    result = train("--model-name=m", "--random-state=3")
    assert result.code == 0
    assert "registered m version 2 (run" in result.out
    assert snapshot(client, "m").versions == ("1", "2")
    assert snapshot(client, "m").aliases == {"production": "1"}


def test_the_version_holds_the_serving_files(
    train: Train, tracking_uri: str, tmp_path: Path
) -> None:
    assert train("--model-name=m").code == 0
    local = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri="models:/m/1",
            dst_path=str(tmp_path / "dl"),
            tracking_uri=tracking_uri,
        )
    )
    assert (local / "model.onnx").is_file()
    metadata = json.loads((local / "extra_files" / "metadata.json").read_text())
    assert metadata["features"] == IRIS_FEATURES
    assert metadata["classes"] == ["setosa", "versicolor", "virginica"]
    assert metadata["task"] == "classification"
    assert metadata["input_name"] == "input"
    assert metadata["outputs"] == {"label": "label", "probabilities": "probabilities"}
    assert metadata["schema_version"] == 1
    assert "version" not in metadata
    assert len(metadata["input_example"]) == 2
    assert set(metadata["metrics"]) == {"accuracy", "f1_macro", "log_loss"}
    drift = json.loads((local / "extra_files" / "drift_reference.json").read_text())
    assert list(drift["features"]) == IRIS_FEATURES
    # Stated requirements, not the whole training environment.
    requirements = (local / "requirements.txt").read_text().split()
    assert {r.split("==")[0] for r in requirements} == {"mlflow", "onnx", "onnxruntime", "numpy"}


def test_other_features_under_the_same_name_are_refused(client: MlflowClient, train: Train) -> None:
    assert train("--model-name=m").code == 0
    with pytest.raises(TrainingError, match=r"^registered model 'm' expects features \["):
        registration.check_compatible(client, "m", ["a", "b"], "classification")


def test_another_task_under_the_same_name_is_refused(client: MlflowClient, train: Train) -> None:
    assert train("--model-name=m").code == 0
    with pytest.raises(
        TrainingError,
        match=r"^registered model 'm' is a classification model, not regression; choose another",
    ):
        registration.check_compatible(client, "m", IRIS_FEATURES, "regression")


def _fail(*args: Any, **kwargs: Any) -> None:
    raise MlflowException("injected failure")


def test_a_failure_while_registering_a_new_model_removes_it(
    train: Train, client: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", _fail)
    result = train("--model-name=m")
    assert (result.code, result.err) == (1, "error: MLflow: injected failure\n")
    assert snapshot(client, "m").exists is False
    # The run itself was logged before registration began; only the registry is rolled back.
    (experiment,) = [e for e in client.search_experiments() if e.name == "m"]
    assert len(client.search_runs([experiment.experiment_id])) == 1


@pytest.mark.parametrize("interruption", [MlflowException("injected failure"), KeyboardInterrupt()])
def test_a_failure_after_a_new_version_removes_the_version(
    train: Train,
    client: MlflowClient,
    monkeypatch: pytest.MonkeyPatch,
    interruption: BaseException,
) -> None:
    assert train("--model-name=m").code == 0
    before = snapshot(client, "m")
    real_create = MlflowClient.create_model_version

    def create_then_fail(*args: Any, **kwargs: Any) -> Any:
        real_create(*args, **kwargs)
        raise interruption

    monkeypatch.setattr(MlflowClient, "create_model_version", create_then_fail)
    result = train("--model-name=m")
    assert result.code in (1, 130)
    assert result.err.count("\n") == 1
    assert result.err.startswith("error: ")
    assert snapshot(client, "m") == before


def test_log_and_register_refuses_before_logging(client: MlflowClient, train: Train) -> None:
    assert train("--model-name=m").code == 0
    experiment = client.get_experiment_by_name("m")
    assert experiment is not None
    runs_before = client.search_runs([experiment.experiment_id])
    connect()
    with pytest.raises(TrainingError):
        registration.log_and_register(
            uri="unused",
            name="m",
            params={},
            metrics={},
            onnx_model=None,
            sklearn_model=None,
            metadata={"features": ["x"], "task": "classification"},
            drift_reference={},
            example=None,
            outputs_example={},
        )
    runs_after = client.search_runs([experiment.experiment_id])
    assert len(runs_after) == len(runs_before)
