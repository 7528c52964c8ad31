"""Exported model directories built by training's own pipeline, without MLflow: for unit tests.

The same fit, ONNX export, parity check, metadata and drift reference as `make train`, written
the way `make export-model` writes them; small forests keep it to about a second per dataset.
"""

import json
from pathlib import Path

from server.contract import DRIFT_REFERENCE_FILE, METADATA_FILE, MODEL_FILE


def build_model_dir(dataset_name: str, out: Path, version: str = "1") -> Path:
    """Train `dataset_name` (iris, wine or diabetes) and write a servable directory into `out`."""
    from training import drift_reference, estimator, onnx_export
    from training.config import TrainConfig
    from training.datasets import load_dataset
    from training.package import serving_metadata

    config = TrainConfig(dataset=dataset_name, n_estimators=10)
    dataset = load_dataset(dataset_name)
    split = estimator.split_dataset(dataset, config)
    model = estimator.fit(dataset, split, config)
    exported = onnx_export.export(model, len(dataset.features))
    onnx_export.check_parity(model, exported, split.X_test)
    metadata = serving_metadata(
        name=dataset.default_model_name,
        dataset=dataset,
        exported=exported,
        example=split.X_test[:2],
        metrics=estimator.evaluate(model, dataset, split),
    )
    metadata["version"] = version
    out.mkdir(parents=True, exist_ok=True)
    (out / MODEL_FILE).write_bytes(exported.proto.SerializeToString())
    (out / METADATA_FILE).write_text(json.dumps(metadata, indent=2))
    reference = drift_reference.build_reference(dataset, split.X_train, split.y_train)
    (out / DRIFT_REFERENCE_FILE).write_text(json.dumps(reference))
    return out
