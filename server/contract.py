"""The model contract shared by training and serving: file names, metadata fields and their rules.

Training writes `metadata.json` beside the model file; promotion and the server's loader read it
back through `parse_metadata`, so a version that one side would refuse is refused by both. The
rules a runtime must then agree with (input name, width and type; one output per role) are in
`check_runtime`.
"""

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

MODEL_FILE = "model.onnx"
METADATA_FILE = "metadata.json"
DRIFT_REFERENCE_FILE = "drift_reference.json"
EXTRA_FILES_DIR = "extra_files"  # where MLflow's onnx flavor keeps files logged beside the model

Task = Literal["classification", "regression"]
# The outputs a model must name, by task: what each front end reads its answer from.
OUTPUT_ROLES: dict[str, tuple[str, ...]] = {
    "classification": ("label", "probabilities"),
    "regression": ("value",),
}
INPUT_DTYPES: dict[str, type] = {"float32": np.float32, "float64": np.float64}


class ContractError(ValueError):
    """Metadata, or a model file, that breaks the contract; the message says which rule."""


@dataclass(frozen=True)
class ModelContract:
    """What `metadata.json` promises about a model, checked."""

    name: str
    task: Task
    features: list[str]
    classes: list[str]
    input_name: str
    outputs: dict[str, str]  # role -> output name, exactly the roles of the task, in role order
    input_dtype: type | None  # None: whatever the model file declares (older metadata)
    input_example: list[list[float]] | None
    metrics: dict[str, float] = field(default_factory=dict)
    version: str | None = None  # set by `training.export` for a plain directory

    @property
    def n_features(self) -> int:
        return len(self.features)

    @property
    def is_classifier(self) -> bool:
        return self.task == "classification"

    @property
    def output_names(self) -> list[str]:
        """The outputs the server asks the runtime for, in role order."""
        return list(self.outputs.values())


def parse_metadata(meta: Any) -> ModelContract:
    """Check `metadata.json`'s content against the contract; raise ContractError naming the rule."""
    if not isinstance(meta, dict):
        raise ContractError("metadata must be a JSON object")
    task = meta.get("task")
    if task not in OUTPUT_ROLES:
        raise ContractError(f"metadata.task must be classification or regression, got {task!r}")
    features = meta.get("features")
    if not (isinstance(features, list) and features and all(isinstance(f, str) for f in features)):
        raise ContractError("metadata.features must be a non-empty list of names")
    if len(set(features)) != len(features):
        raise ContractError("metadata.features has duplicate names")
    classes = meta.get("classes") or []
    if task == "classification" and not (isinstance(classes, list) and classes):
        raise ContractError("metadata.classes must list the classes of a classifier")
    if not isinstance(classes, list):
        raise ContractError("metadata.classes must be a list")
    input_name = meta.get("input_name")
    outputs = meta.get("outputs")
    if not isinstance(input_name, str) or not input_name or not isinstance(outputs, dict):
        raise ContractError("metadata must name the model's input and outputs")
    needed = OUTPUT_ROLES[task]
    if any(not isinstance(outputs.get(role), str) for role in needed):
        raise ContractError(f"metadata.outputs must name {', '.join(needed)}")
    names = [outputs[role] for role in needed]
    if len(set(names)) != len(names):
        raise ContractError("metadata.outputs names one output for two roles")
    dtype_name = meta.get("input_dtype")
    if dtype_name is not None and dtype_name not in INPUT_DTYPES:
        raise ContractError(
            f"metadata.input_dtype must be one of {', '.join(INPUT_DTYPES)}, got {dtype_name!r}"
        )
    example = meta.get("input_example")
    if example is not None and not _is_matrix(example, len(features)):
        raise ContractError(
            f"metadata.input_example must be a list of rows of {len(features)} numbers"
        )
    metrics = meta.get("metrics") or {}
    if not isinstance(metrics, dict):
        raise ContractError("metadata.metrics must be an object")
    version = meta.get("version")
    return ModelContract(
        name=str(meta.get("name") or "model"),
        task=task,
        features=list(features),
        classes=[str(c) for c in classes],
        input_name=input_name,
        outputs={role: outputs[role] for role in needed},
        input_dtype=INPUT_DTYPES[dtype_name] if dtype_name is not None else None,
        input_example=example,
        metrics={str(k): v for k, v in metrics.items() if isinstance(v, int | float)},
        version=str(version) if version is not None else None,
    )


def _is_matrix(value: Any, width: int) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(
            isinstance(row, list)
            and len(row) == width
            and all(type(v) in (int, float) for v in row)
            for row in value
        )
    )


@dataclass(frozen=True)
class TensorSpec:
    """A model file's input or output as its runtime declares it."""

    name: str
    dtype: type  # a numpy scalar type; object for anything the server cannot serve
    shape: tuple[int | str | None, ...]


def check_runtime(
    contract: ModelContract, inputs: list[TensorSpec], outputs: list[TensorSpec]
) -> type:
    """Check a model file's declared tensors against the contract; return the input dtype."""
    names = [spec.name for spec in inputs]
    if names != [contract.input_name]:
        raise ContractError(f"the model's inputs {names} are not [{contract.input_name!r}]")
    spec = inputs[0]
    if spec.dtype not in INPUT_DTYPES.values():
        raise ContractError(f"input {spec.name!r} has unsupported type {spec.dtype.__name__}")
    if contract.input_dtype is not None and spec.dtype is not contract.input_dtype:
        raise ContractError(
            f"input {spec.name!r} is {spec.dtype.__name__}; "
            f"metadata says {contract.input_dtype.__name__}"
        )
    width = spec.shape[-1] if spec.shape else None
    if len(spec.shape) != 2 or (isinstance(width, int) and width != contract.n_features):
        raise ContractError(
            f"input {spec.name!r} has shape {list(spec.shape)}; "
            f"metadata lists {contract.n_features} features"
        )
    declared = {o.name for o in outputs}
    missing = [name for name in contract.output_names if name not in declared]
    if missing:
        raise ContractError(f"the model has no output named {', '.join(missing)}")
    return spec.dtype


def check_answers(contract: ModelContract, n_rows: int, raw: list[np.ndarray]) -> None:
    """Check a model's answer to `n_rows` rows (outputs in role order) against the contract."""
    if contract.is_classifier:
        labels, probabilities = raw
        if probabilities.shape != (n_rows, len(contract.classes)):
            raise ContractError(
                f"probabilities have shape {probabilities.shape}; "
                f"metadata lists {len(contract.classes)} classes"
            )
        flat = labels.reshape(-1)
        if flat.shape != (n_rows,) or flat.dtype.kind not in "iu":
            raise ContractError("the classifier did not return one integer label per row")
        if flat.min() < 0 or flat.max() >= len(contract.classes):
            raise ContractError("the model returned a label outside the metadata's classes")
    elif raw[0].reshape(-1).shape != (n_rows,):
        raise ContractError("the regressor did not return one value per row")


def largest_accepted(dtype: type) -> float:
    """The largest number that is still finite once cast to `dtype`: the bound on every input.

    A double a little past float32's maximum rounds down to it rather than to infinity, so it is
    a value the model can take; every front end and the OpenAPI document use this one bound.
    """
    info = np.finfo(dtype)
    if info.bits == 64:
        return float(info.max)
    # Half a unit in the last place above the maximum rounds (to even) to infinity.
    ulp = math.ldexp(1.0, info.maxexp - 1 - info.nmant)
    return math.nextafter(float(info.max) + ulp / 2, 0.0)
