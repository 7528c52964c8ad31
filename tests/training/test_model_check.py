"""Promotion's checks: the server's own loader decides, and a replacement must keep the inputs."""

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from server.contract import ModelContract, parse_metadata
from server.registry import read_model_dir
from tests.model_dirs import build_model_dir
from training import model_check
from training.errors import TrainingError
from training.registry import NotFound

IRIS: dict[str, Any] = {
    "features": ["a", "b"],
    "task": "classification",
    "classes": ["x", "y"],
    "input_name": "input",
    "outputs": {"label": "label", "probabilities": "probabilities"},
}


def contract(**changes: Any) -> ModelContract:
    return parse_metadata({**IRIS, **changes})


def test_same_inputs_may_replace() -> None:
    model_check.check_replaces(contract(), contract(), "m version 2")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"features": ["a", "c"]}, "m version 2 has features ['a', 'c'], but the version it would"),
        ({"classes": ["x", "z"]}, "m version 2 has classes ['x', 'z'], but the version it would"),
        (
            {"task": "regression", "classes": [], "outputs": {"value": "v"}},
            "m version 2 has task regression, but the version it would",
        ),
    ],
)
def test_other_inputs_may_not_replace(change: dict[str, Any], message: str) -> None:
    with pytest.raises(TrainingError) as caught:
        model_check.check_replaces(contract(**change), contract(), "m version 2")
    assert str(caught.value).startswith(message)


@pytest.fixture(scope="module")
def mlflow_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A version's directory as MLflow's onnx flavor lays it out: metadata in extra_files/."""
    exported = build_model_dir("iris", tmp_path_factory.mktemp("exported"))
    local = tmp_path_factory.mktemp("version")
    shutil.copyfile(exported / "model.onnx", local / "model.onnx")
    (local / "extra_files").mkdir()
    shutil.copyfile(exported / "metadata.json", local / "extra_files" / "metadata.json")
    return local


def with_metadata(layout: Path, tmp_path: Path, **changes: Any) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(layout, copy)
    path = copy / "extra_files" / "metadata.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
    return copy


class VersionDirs:
    """A registry's version_file over local directories, one per version: what promotion reads."""

    def __init__(self, **versions: Path) -> None:
        self.versions = versions

    def version_file(self, name: str, version: str, path: str) -> bytes:
        try:
            return (self.versions[version] / path).read_bytes()
        except (KeyError, FileNotFoundError):
            raise NotFound(path) from None


def load_checked(layout: Path, label: str) -> ModelContract:
    return model_check.load_checked(read_model_dir(layout), label)


def test_a_servable_version_passes(mlflow_layout: Path) -> None:
    checked = load_checked(mlflow_layout, "iris-classifier version 2")
    assert checked.features[0] == "sepal length (cm)"
    registry: Any = VersionDirs(**{"1": mlflow_layout, "2": mlflow_layout})
    model_check.check_promotable(registry, "iris-classifier", "2", "1")


def test_files_must_be_there(tmp_path: Path, mlflow_layout: Path) -> None:
    registry: Any = VersionDirs(**{"2": tmp_path})
    with pytest.raises(TrainingError, match=r"^m version 2 would not be served: .*metadata\.json"):
        model_check.check_promotable(registry, "m", "2", None)
    missing_model = tmp_path / "no-model"
    shutil.copytree(mlflow_layout, missing_model)
    (missing_model / "model.onnx").unlink()
    registry = VersionDirs(**{"2": missing_model})
    with pytest.raises(TrainingError, match=r"would not be served: it has no model\.onnx"):
        model_check.check_promotable(registry, "m", "2", None)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"features": ["a", "b"], "input_example": None}, "metadata lists 2 features"),
        ({"outputs": {"label": "label"}}, "outputs must name label, probabilities"),
        ({"input_dtype": "float64"}, "metadata says float64"),
        ({"classes": ["x", "y"]}, "metadata lists 2 classes"),
    ],
)
def test_a_version_the_server_would_refuse_is_refused(
    mlflow_layout: Path, tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    """Output roles and the input type count too: promotion and serving share one rule."""
    with pytest.raises(TrainingError, match=message):
        load_checked(with_metadata(mlflow_layout, tmp_path, **change), "bad")
