"""Copying a registered model out of the registry into the serving directory."""

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from tests.training.conftest import Train
from training.errors import TrainingError
from training.export import export_model, main


def test_exports_the_production_version(train: Train, tmp_path: Path) -> None:
    assert train().code == 0
    assert train("--random-state=5").code == 0  # version 2 exists, production stays on 1
    out = export_model("models:/iris-classifier@production", tmp_path / "model")
    assert sorted(p.name for p in out.iterdir()) == [
        "drift_reference.json",
        "metadata.json",
        "model.onnx",
    ]
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["version"] == "1"
    assert metadata["name"] == "iris-classifier"
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    example = np.asarray(metadata["input_example"], dtype=np.float32)
    label, probabilities = session.run(["label", "probabilities"], {"input": example})
    assert label.shape == (2,)
    assert probabilities.shape == (2, 3)
    drift = json.loads((out / "drift_reference.json").read_text())
    assert drift["rows"] == 120


def test_exports_a_version_by_number(train: Train, tmp_path: Path) -> None:
    assert train("--dataset=diabetes").code == 0
    assert train("--dataset=diabetes", "--random-state=5").code == 0
    out = export_model("models:/diabetes-regressor/2", tmp_path / "model")
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["version"] == "2"
    assert metadata["outputs"] == {"value": "value"}
    assert metadata["task"] == "regression"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("runs:/abc/model", r"^expected models:/<name>@<alias> or models:/<name>/<version>"),
        ("models:/iris-classifier/9", r"^no registered model version at models:/iris-classifier/9"),
        ("models:/iris-classifier@staging", r"^no registered model version at models:/iris-"),
        ("models:/nothing@production", r"^no registered model version at models:/nothing@"),
    ],
)
def test_bad_model_uris(train: Train, tmp_path: Path, uri: str, message: str) -> None:
    assert train().code == 0
    with pytest.raises(TrainingError, match=message):
        export_model(uri, tmp_path / "model")
    assert not (tmp_path / "model").exists()


def test_command_line(train: Train, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert train().code == 0
    capsys.readouterr()
    out = tmp_path / "model"
    assert main(["--model-uri", "models:/iris-classifier/1", "--out", str(out)]) == 0
    assert capsys.readouterr().out == f"exported models:/iris-classifier/1 to {out}\n"
    assert main(["--model-uri", "models:/iris-classifier/7", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no registered model version at models:/iris-classifier/7")
    assert err.count("\n") == 1


def test_a_missing_artifact_is_one_line(
    train: Train, tracking_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert train().code == 0
    store = Path(tracking_uri.removeprefix("sqlite:///")).parent
    for onnx_file in (store / "artifacts").rglob("model.onnx"):
        onnx_file.unlink()
    capsys.readouterr()
    assert main(["--model-uri", "models:/iris-classifier/1", "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert err == "error: models:/iris-classifier/1 is not a serving model: missing model.onnx\n"
