import json
from typing import Any

import pytest

from training import model_check
from training.errors import TrainingError
from training.registry import NotFound

IRIS = {"features": ["a", "b"], "task": "classification", "classes": ["x", "y"]}


def _metadata(**changes: Any) -> dict[str, Any]:
    return {**IRIS, "input_name": "input", "outputs": {"label": "label"}, **changes}


def test_same_inputs_may_replace() -> None:
    model_check.check_replaces(_metadata(), _metadata(), "m version 2")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"features": ["a", "c"]}, "m version 2 has features ['a', 'c'], but the version it would"),
        ({"task": "regression"}, "m version 2 has task regression, but the version it would"),
        ({"classes": ["x", "z"]}, "m version 2 has classes ['x', 'z'], but the version it would"),
    ],
)
def test_other_inputs_may_not_replace(change: dict[str, Any], message: str) -> None:
    with pytest.raises(TrainingError) as caught:
        model_check.check_replaces(_metadata(**change), _metadata(), "m version 2")
    assert str(caught.value).startswith(message)


class FilesOf:
    """A registry's version_file over a dict: the files one version has."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files

    def version_file(self, name: str, version: str, path: str) -> bytes:
        try:
            return self.files[path]
        except KeyError:
            raise NotFound(path) from None


def test_metadata_must_be_there_and_complete() -> None:
    registry: Any = FilesOf({})
    with pytest.raises(TrainingError, match=r"^m version 2 is not a serving model: it has no"):
        model_check.read_metadata(registry, "m", "2", "m version 2")
    with pytest.raises(TrainingError, match=r"^m version 2 has no 'task' in its metadata.json"):
        model_check.parse_metadata(json.dumps({"features": []}).encode(), "m version 2")
    with pytest.raises(TrainingError, match=r"^m version 2 has an unreadable metadata.json"):
        model_check.parse_metadata(b"[1, 2]", "m version 2")


def test_a_missing_model_file_is_refused() -> None:
    registry: Any = FilesOf({"extra_files/metadata.json": json.dumps(_metadata()).encode()})
    with pytest.raises(
        TrainingError, match=r"^m version 2 is not a serving model: it has no model.onnx"
    ):
        model_check.check_promotable(registry, "m", "2", None)


def test_a_model_with_other_inputs_than_its_metadata_is_refused() -> None:
    from training import estimator, onnx_export
    from training.config import TrainConfig
    from training.datasets import load_dataset

    dataset = load_dataset("iris")
    config = TrainConfig(n_estimators=3)
    model = estimator.fit(dataset, estimator.split_dataset(dataset, config), config)
    onnx = onnx_export.export(model, 4).proto.SerializeToString()
    metadata = _metadata(features=dataset.features, outputs={"label": "label"})
    model_check.check_runs(onnx, metadata, "ok")
    with pytest.raises(TrainingError, match=r"^bad: model.onnx takes 4 features, but its metadata"):
        model_check.check_runs(onnx, {**metadata, "features": ["a", "b"]}, "bad")
    with pytest.raises(TrainingError, match=r"^bad: model.onnx has no output value"):
        model_check.check_runs(onnx, {**metadata, "outputs": {"label": "value"}}, "bad")
