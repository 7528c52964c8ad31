"""The registered model version as MLflow would serve it, and its answers read back."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str
    uri: str  # models:/<name>/<version>
    sklearn_uri: str | None  # the unregistered scikit-learn form logged in the same run
    directory: Path  # the exported serving files (model.onnx, metadata.json, ...)
    metadata: dict[str, Any]


def resolve(model_uri: str, export_to: Path) -> ModelVersion:
    """Pin `model_uri` (alias or version) to one version and export its serving files."""
    import json

    from mlflow.tracking import MlflowClient

    from training.export import _resolve_version, export_model
    from training.tracking import connect

    connect()
    name, version = _resolve_version(model_uri)
    pinned = f"models:/{name}/{version}"
    tags = MlflowClient().get_model_version(name, version).tags
    directory = export_model(pinned, export_to)
    metadata = json.loads((directory / "metadata.json").read_text())
    return ModelVersion(name, version, pinned, tags.get("sklearn_model_uri"), directory, metadata)


def rewrap_onnx_with_tensor_signature(model: ModelVersion, out: Path) -> Path:
    """The same model.onnx bytes saved as an MLflow onnx model with a tensor signature.

    MLflow's onnx pyfunc flattens every output of a DataFrame request into one column, so a
    classifier with a [N, classes] probabilities output fails ("All arrays must be of the same
    length"; mlflow/mlflow#12539). With a tensor signature the request is an array, the output a
    dict of arrays, and MLflow's scoring server can answer.
    """
    import shutil

    import mlflow.onnx
    import onnx
    import onnxruntime as ort
    from mlflow.models import infer_signature

    onnx_path = model.directory / "model.onnx"
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    example = np.asarray(model.metadata["input_example"], dtype=np.float32)
    outputs = dict(
        zip(
            [o.name for o in session.get_outputs()],
            session.run(None, {session.get_inputs()[0].name: example}),
            strict=True,
        )
    )
    if out.exists():
        shutil.rmtree(out)
    mlflow.onnx.save_model(
        onnx.load(str(onnx_path)),
        str(out),
        signature=infer_signature(example, outputs),
        onnx_execution_providers=["CPUExecutionProvider"],
        pip_requirements=[f"onnxruntime=={ort.__version__}"],
    )
    return out


def label_index(answer: Any, classes: list[str]) -> int | None:
    """The predicted class index in any of the answers the servers give for one row."""
    if isinstance(answer, dict):
        if "prediction" in answer and answer["prediction"] in classes:
            return classes.index(answer["prediction"])
        for key in ("predictions", "label"):
            if key in answer:
                return label_index(answer[key], classes)
        return None
    if isinstance(answer, list) and answer:
        return label_index(answer[0], classes)
    if isinstance(answer, (int, float)) and not isinstance(answer, bool):
        return int(answer)
    if isinstance(answer, str) and answer in classes:
        return classes.index(answer)
    return None
