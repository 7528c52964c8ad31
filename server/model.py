"""A loaded ONNX model: validated against its metadata, warmed up, and run on batches.

No HTTP here; the simple API and the Open Inference Protocol are thin front ends over this.
"""

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnxruntime as ort
import orjson

from server.errors import ModelLoadError

_ONNX_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64}


@dataclass(frozen=True)
class ModelFiles:
    """What a model is made of, wherever it came from."""

    onnx: bytes
    metadata: dict[str, Any]
    drift_reference: dict[str, Any] | None


@dataclass(frozen=True)
class Origin:
    """Where the model came from, for /model/info and the model_info metric."""

    uri: str
    source: str  # "registry", "fallback" or "local"
    version: str


@dataclass(slots=True)
class Predictions:
    """One onnxruntime call's outputs for a batch; derived views are computed on demand."""

    raw: list[np.ndarray]  # in the order of Model.output_names
    class_indices: np.ndarray | None  # classifiers: [N] int64
    probabilities: np.ndarray | None  # classifiers: [N, n_classes]
    values: np.ndarray | None  # regressors: [N]
    seconds: float

    def rows(self, start: int, stop: int) -> "Predictions":
        """The predictions for rows [start, stop) of the batch, as views (nothing is copied)."""
        return Predictions(
            [array[start:stop] for array in self.raw],
            None if self.class_indices is None else self.class_indices[start:stop],
            None if self.probabilities is None else self.probabilities[start:stop],
            None if self.values is None else self.values[start:stop],
            self.seconds,
        )

    @property
    def confidences(self) -> np.ndarray:
        """The probability of each row's predicted class."""
        assert self.probabilities is not None
        assert self.class_indices is not None
        picked: np.ndarray = self.probabilities[
            np.arange(len(self.class_indices)), self.class_indices
        ]
        return picked


@dataclass
class Model:
    name: str
    version: str
    task: str
    features: list[str]
    classes: list[str]
    origin: Origin
    metadata: dict[str, Any]
    drift_reference: dict[str, Any] | None
    session: ort.InferenceSession
    input_name: str
    input_dtype: type
    output_names: list[str]
    output_types: dict[str, str]
    outputs: dict[str, str]
    loaded_at: float = field(default_factory=time.time)

    @property
    def n_features(self) -> int:
        return len(self.features)

    @property
    def is_classifier(self) -> bool:
        return self.task == "classification"

    def predict(self, rows: np.ndarray) -> Predictions:
        """Run one onnxruntime call on a batch of shape [N, n_features] of the input's dtype."""
        started = time.perf_counter()
        raw = self.session.run(self.output_names, {self.input_name: rows})
        seconds = time.perf_counter() - started
        if self.is_classifier:  # output_names is [label, probabilities]
            return Predictions(raw, raw[0].reshape(-1), raw[1], None, seconds)
        return Predictions(raw, None, None, raw[0].reshape(-1).astype(np.float64), seconds)

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "framework": "onnx",
            "task": self.task,
            "features": self.features,
            "classes": self.classes,
            "source": self.origin.source,
            "model_uri": self.origin.uri,
            "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.loaded_at)),
            "metrics": self.metadata.get("metrics", {}),
        }


def load_model(files: ModelFiles, origin: Origin) -> Model:
    """Build a Model, refusing one whose ONNX graph disagrees with its metadata."""
    meta = files.metadata
    task = meta.get("task")
    features = meta.get("features")
    classes = meta.get("classes") or []
    outputs = meta.get("outputs")
    input_name = meta.get("input_name")
    if task not in ("classification", "regression"):
        raise ModelLoadError(f"metadata.task must be classification or regression, got {task!r}")
    if not (isinstance(features, list) and features and all(isinstance(f, str) for f in features)):
        raise ModelLoadError("metadata.features must be a non-empty list of names")
    if len(set(features)) != len(features):
        raise ModelLoadError("metadata.features has duplicate names")
    if task == "classification" and not (isinstance(classes, list) and classes):
        raise ModelLoadError("metadata.classes must list the classes of a classifier")
    if not isinstance(outputs, dict) or not isinstance(input_name, str):
        raise ModelLoadError("metadata must name the model's input and outputs")
    needed = ("label", "probabilities") if task == "classification" else ("value",)
    if any(role not in outputs for role in needed):
        raise ModelLoadError(f"metadata.outputs must name {', '.join(needed)}")

    options = ort.SessionOptions()
    # One thread per session: a request is a few rows, and threads would only add hand-offs.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(files.onnx, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises untyped errors for a corrupt graph
        raise ModelLoadError(f"onnxruntime cannot load the model: {exc}") from exc

    inputs = {i.name: i for i in session.get_inputs()}
    if input_name not in inputs or len(inputs) != 1:
        raise ModelLoadError(f"the ONNX model's inputs {list(inputs)} are not [{input_name!r}]")
    spec = inputs[input_name]
    if spec.type not in _ONNX_TYPES:
        raise ModelLoadError(f"input {input_name!r} has unsupported type {spec.type}")
    width = spec.shape[-1] if spec.shape else None
    if len(spec.shape) != 2 or (isinstance(width, int) and width != len(features)):
        raise ModelLoadError(
            f"input {input_name!r} has shape {spec.shape}; metadata lists {len(features)} features"
        )
    output_types = {o.name: o.type for o in session.get_outputs()}
    missing = [name for role, name in outputs.items() if name not in output_types]
    if missing:
        raise ModelLoadError(f"the ONNX model has no output named {', '.join(missing)}")

    model = Model(
        name=str(meta.get("name") or "model"),
        version=origin.version,
        task=task,
        features=list(features),
        classes=[str(c) for c in classes],
        origin=origin,
        metadata=meta,
        drift_reference=files.drift_reference,
        session=session,
        input_name=input_name,
        input_dtype=_ONNX_TYPES[spec.type],
        output_names=[outputs[role] for role in needed],
        output_types={outputs[role]: output_types[outputs[role]] for role in needed},
        outputs={role: outputs[role] for role in needed},
    )
    warm_up(model)
    return model


def warm_up(model: Model) -> None:
    """Score the logged input example (or zeros) so the first request pays no first-run cost."""
    example = model.metadata.get("input_example") or [[0.0] * model.n_features]
    try:
        rows: np.ndarray = np.asarray(example, dtype=model.input_dtype).reshape(
            -1, model.n_features
        )
        for _ in range(3):
            result = model.predict(rows)
    except Exception as exc:  # any failure here means the model cannot serve
        raise ModelLoadError(f"warm-up on the input example failed: {exc}") from exc
    if model.is_classifier:
        assert result.class_indices is not None
        probabilities = result.probabilities
        assert probabilities is not None
        if probabilities.shape != (len(rows), len(model.classes)):
            raise ModelLoadError(
                f"probabilities have shape {probabilities.shape}; "
                f"metadata lists {len(model.classes)} classes"
            )
        if result.class_indices.min() < 0 or result.class_indices.max() >= len(model.classes):
            raise ModelLoadError("the model returned a label outside the metadata's classes")
    elif result.values is None or result.values.shape != (len(rows),):
        raise ModelLoadError("the regressor did not return one value per row")


def parse_json_file(content: bytes, what: str) -> dict[str, Any]:
    try:
        value = orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        raise ModelLoadError(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ModelLoadError(f"{what} must be a JSON object")
    return value
