"""A served model: its contract (metadata), its runtime, where it came from; scored on batches.

No HTTP here; every front end is a thin layer over this. No framework either: the runtime
interface (`server.runtime`) hides it.
"""

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from server.contract import (
    ContractError,
    ModelContract,
    check_answers,
    check_runtime,
    largest_accepted,
    parse_metadata,
)
from server.errors import ModelLoadError
from server.runtime import Runtime, RuntimeKind, RuntimeLoadError, runtime_kind


@dataclass(frozen=True)
class ModelFiles:
    """What a model is made of, wherever it came from."""

    model: bytes  # the model file (model.onnx)
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
    """One model call's outputs for a batch; derived views are computed on demand."""

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
    def answers(self) -> np.ndarray:
        """One answer per row: the class index, or the value."""
        answers = self.class_indices if self.class_indices is not None else self.values
        assert answers is not None
        return answers


class Model:
    """A model ready to serve: contract, runtime and origin, with what the request path reads."""

    def __init__(
        self,
        contract: ModelContract,
        runtime: Runtime,
        kind: RuntimeKind,
        origin: Origin,
        input_dtype: type,
        drift_reference: dict[str, Any] | None,
    ) -> None:
        self.contract = contract
        self.runtime = runtime
        self.framework = kind.framework
        self.platform = kind.platform  # the runtime's name in the Open Inference Protocol
        self.origin = origin
        self.input_dtype = input_dtype
        # The one bound on input values, for every front end and the OpenAPI document.
        self.input_limit = largest_accepted(input_dtype)
        self.drift_reference = drift_reference
        self.loaded_at = time.time()
        # Read on every request: plain attributes rather than properties.
        self.name = contract.name
        self.version = origin.version
        self.task = contract.task
        self.features = contract.features
        self.classes = contract.classes
        self.n_features = contract.n_features
        self.is_classifier = contract.is_classifier
        self.input_name = contract.input_name
        self.output_names = contract.output_names
        self.output_dtypes = {spec.name: spec.dtype for spec in runtime.outputs}

    def predict(self, rows: np.ndarray) -> Predictions:
        """Score a batch of shape [N, n_features] of the input's dtype in one runtime call."""
        started = time.perf_counter()
        raw = self.runtime.run(self.output_names, self.input_name, rows)
        seconds = time.perf_counter() - started
        if self.is_classifier:  # output_names is [label, probabilities]
            return Predictions(raw, raw[0].reshape(-1), raw[1], None, seconds)
        return Predictions(raw, None, None, raw[0].reshape(-1).astype(np.float64), seconds)

    def example_rows(self) -> np.ndarray:
        """The logged input example (or a row of zeros) as a batch."""
        example = self.contract.input_example or [[0.0] * self.n_features]
        rows: np.ndarray = np.asarray(example, dtype=self.input_dtype).reshape(-1, self.n_features)
        return rows

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "framework": self.framework,
            "task": self.task,
            "features": self.features,
            "classes": self.classes,
            "source": self.origin.source,
            "model_uri": self.origin.uri,
            "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.loaded_at)),
            "metrics": self.contract.metrics,
        }


def load_model(files: ModelFiles, origin: Origin) -> Model:
    """Build a Model, refusing one whose model file disagrees with its metadata or cannot answer."""
    try:
        contract = parse_metadata(files.metadata)
        kind = runtime_kind(files.metadata.get("framework"))
        runtime = kind.load(files.model)
        input_dtype = check_runtime(contract, runtime.inputs, runtime.outputs)
    except (ContractError, RuntimeLoadError) as exc:
        raise ModelLoadError(str(exc)) from exc
    model = Model(contract, runtime, kind, origin, input_dtype, files.drift_reference)
    warm_up(model)
    return model


def warm_up(model: Model) -> None:
    """Score the logged input example so the first request pays no first-run cost."""
    try:
        rows = model.example_rows()
        for _ in range(3):
            result = model.predict(rows)
    except Exception as exc:  # any failure here means the model cannot serve
        raise ModelLoadError(f"warm-up on the input example failed: {exc}") from exc
    try:
        check_answers(model.contract, len(rows), result.raw)
    except ContractError as exc:
        raise ModelLoadError(str(exc)) from exc


def parse_json_file(content: bytes, what: str) -> dict[str, Any]:
    try:
        value = orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        raise ModelLoadError(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ModelLoadError(f"{what} must be a JSON object")
    return value
