import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from server.errors import ModelLoadError
from server.model import ModelFiles, Origin, load_model
from server.registry import read_model_dir

ORIGIN = Origin("test", "local", "7")


@pytest.fixture(scope="module")
def iris_files(model_dirs: dict[str, Path]) -> ModelFiles:
    return read_model_dir(model_dirs["iris"])


def test_loads_and_predicts(iris_files: ModelFiles) -> None:
    model = load_model(iris_files, ORIGIN)
    assert model.version == "7"
    assert model.classes == ["setosa", "versicolor", "virginica"]
    result = model.predict(np.array([[5.1, 3.5, 1.4, 0.2], [7.7, 3.0, 6.1, 2.3]], dtype=np.float32))
    assert result.class_indices is not None
    assert result.class_indices.tolist() == [0, 2]
    assert result.probabilities is not None
    assert all(0.5 < max(row) <= 1 + 1e-6 for row in result.probabilities)
    assert result.seconds > 0


def test_regressor(model_dirs: dict[str, Path]) -> None:
    files = read_model_dir(model_dirs["diabetes"])
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
        ({"features": ["a", "b", "c"], "input_example": None}, "shape"),
        ({"features": ["a", "b", "c"]}, "input_example must be a list of rows of 3 numbers"),
        ({"input_dtype": "float64"}, "metadata says float64"),
        ({"input_dtype": "int8"}, "input_dtype must be one of"),
        ({"outputs": {"label": "label", "probabilities": "label"}}, "one output for two roles"),
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
        load_model(
            replace(iris_files, model=iris_files.model[: len(iris_files.model) // 2]), ORIGIN
        )


def test_an_unknown_framework_is_refused(iris_files: ModelFiles) -> None:
    files = replace(iris_files, metadata={**iris_files.metadata, "framework": "pmml"})
    with pytest.raises(ModelLoadError, match="framework 'pmml' is not served here"):
        load_model(files, ORIGIN)


def test_missing_files_are_refused(tmp_path: Path, model_dirs: dict[str, Path]) -> None:
    with pytest.raises(ModelLoadError, match=r"it has no metadata\.json"):
        read_model_dir(tmp_path)
    (tmp_path / "metadata.json").write_text((model_dirs["iris"] / "metadata.json").read_text())
    with pytest.raises(ModelLoadError, match=r"it has no model\.onnx"):
        read_model_dir(tmp_path)
    (tmp_path / "model.onnx").write_bytes((model_dirs["iris"] / "model.onnx").read_bytes())
    (tmp_path / "metadata.json").write_text("[1, 2]")
    with pytest.raises(ModelLoadError, match="JSON object"):
        read_model_dir(tmp_path)
    (tmp_path / "metadata.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        read_model_dir(tmp_path)


def test_reads_an_mlflow_model_directory_layout(
    tmp_path: Path, model_dirs: dict[str, Path]
) -> None:
    source = model_dirs["iris"]
    (tmp_path / "extra_files").mkdir()
    (tmp_path / "model.onnx").write_bytes((source / "model.onnx").read_bytes())
    metadata = json.loads((source / "metadata.json").read_text())
    (tmp_path / "extra_files" / "metadata.json").write_text(json.dumps(metadata))
    files = read_model_dir(tmp_path)
    assert files.metadata["name"] == "iris-classifier"
    assert files.drift_reference is None
