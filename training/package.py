"""The serving files a training run produces, checked against the contract the server loads by."""

from typing import Any

import numpy as np

from server.contract import ContractError, parse_metadata
from training.datasets import Dataset
from training.errors import TrainingError
from training.onnx_export import ExportedModel

METADATA_SCHEMA_VERSION = 1


def serving_metadata(
    *,
    name: str,
    dataset: Dataset,
    exported: ExportedModel,
    example: np.ndarray,
    metrics: dict[str, float],
) -> dict[str, Any]:
    """metadata.json's content; refused here, before anything is registered, if the server would."""
    metadata = {
        "schema_version": METADATA_SCHEMA_VERSION,
        "name": name,
        "task": dataset.task,
        "framework": "onnx",
        "dataset": dataset.name,
        "features": dataset.features,
        "classes": dataset.classes,
        "input_name": exported.input_name,
        "input_dtype": "float32",  # what onnx_export declares for every model
        "outputs": exported.outputs,
        "input_example": np.asarray(example, dtype=np.float64).tolist(),
        "metrics": metrics,
    }
    try:
        parse_metadata(metadata)
    except ContractError as exc:
        raise TrainingError(f"the model's metadata breaks the serving contract: {exc}") from exc
    return metadata
