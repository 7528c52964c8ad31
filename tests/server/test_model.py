import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from server.errors import ModelLoadError
from server.model import ModelFiles, Origin, load_model
from server.registry import read_model_dir
from tests.conftest import TrainedStore

ORIGIN = Origin("test", "local", "7")


@pytest.fixture(scope="module")
def iris_files(trained_store: TrainedStore) -> ModelFiles:
    return read_model_dir(trained_store.exported["iris-classifier"])


def test_loads_and_predicts(iris_files: ModelFiles) -> None:
    model = load_model(iris_files, ORIGIN)
    assert model.version == "7"
    assert model.classes == ["setosa", "versicolor", "virginica"]
    result = model.predict(np.array([[5.1, 3.5, 1.4, 0.2], [7.7, 3.0, 6.1, 2.3]], dtype=np.float32))
    assert result.class_indices is not None
    assert result.class_indices.tolist() == [0, 2]
    assert result.confidences is not None
    assert all(0.5 < c <= 1 for c in result.confidences)
    assert result.seconds > 0


def test_regressor(trained_store: TrainedStore) -> None:
    files = read_model_dir(trained_store.exported["diabetes-regressor"])
    model = load_model(files, ORIGIN)
    assert model.task == "regression"
    rows = np.asarray(files.metadata["input_example"], dtype=np.float32)
    result = model.predict(rows)
    assert result.values is not None
    assert result.values.shape == (len(rows),)
    assert result.class_indices is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"task": "ranking"}, "task"),
        ({"features": []}, "features"),
        ({"features": ["a", "a", "b", "c"]}, "duplicate"),
        ({"classes": []}, "classes"),
        ({"classes": ["a", "b"]}, "probabilities have shape"),
        ({"features": ["a", "b", "c"]}, "shape"),
        ({"input_name": "x"}, "inputs"),
        ({"outputs": {"label": "label"}}, "probabilities"),
        ({"outputs": {"label": "nope", "probabilities": "probabilities"}}, "no output named nope"),
    ],
)
def test_metadata_that_disagrees_with_the_graph_is_refused(
    iris_files: ModelFiles, change: dict[str, object], message: str
) -> None:
    files = replace(iris_files, metadata={**iris_files.metadata, **change})
    with pytest.raises(ModelLoadError, match=message):
        load_model(files, ORIGIN)


def test_corrupt_onnx_is_refused(iris_files: ModelFiles) -> None:
    with pytest.raises(ModelLoadError, match="onnxruntime cannot load"):
        load_model(replace(iris_files, onnx=iris_files.onnx[: len(iris_files.onnx) // 2]), ORIGIN)


def test_missing_files_are_refused(tmp_path: Path, trained_store: TrainedStore) -> None:
    with pytest.raises(ModelLoadError, match=r"model\.onnx and metadata\.json"):
        read_model_dir(tmp_path)
    (tmp_path / "model.onnx").write_bytes(
        (trained_store.exported["iris-classifier"] / "model.onnx").read_bytes()
    )
    (tmp_path / "metadata.json").write_text("[1, 2]")
    with pytest.raises(ModelLoadError, match="JSON object"):
        read_model_dir(tmp_path)
    (tmp_path / "metadata.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        read_model_dir(tmp_path)


def test_reads_an_mlflow_model_directory_layout(
    tmp_path: Path, trained_store: TrainedStore
) -> None:
    source = trained_store.exported["iris-classifier"]
    (tmp_path / "extra_files").mkdir()
    (tmp_path / "model.onnx").write_bytes((source / "model.onnx").read_bytes())
    metadata = json.loads((source / "metadata.json").read_text())
    (tmp_path / "extra_files" / "metadata.json").write_text(json.dumps(metadata))
    files = read_model_dir(tmp_path)
    assert files.metadata["name"] == "iris-classifier"
    assert files.drift_reference is None
