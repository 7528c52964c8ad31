"""The reference bundle: the models the tests train, their held-out rows, and the answers of the
reference machine (x86-64) to both, in one directory that another machine can be checked against.

    manifest.json             models (name, task, directories), how the bundle was made
    models/<name>/            model.onnx, metadata.json, drift_reference.json (as exported)
    rows/<name>.npy           the held-out rows (float32), as training split them
    reference.json            the reference machine's observation (see arm64.observe)

The CI job that checks native arm64 downloads this directory from the x86-64 job that made it.
"""

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

DATASETS = ("iris", "wine", "diabetes")  # every model the tests train (tests/conftest.py)
MANIFEST = "manifest.json"
REFERENCE = "reference.json"


def read_manifest(bundle: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((bundle / MANIFEST).read_text())
    return manifest


def metadata(bundle: Path, entry: dict[str, Any]) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((bundle / entry["dir"] / "metadata.json").read_text())
    return loaded


def held_out_rows(dataset: str) -> np.ndarray:
    """The rows training holds out for `dataset` with its default options (as the tests train)."""
    from training.config import TrainConfig
    from training.datasets import load_dataset
    from training.estimator import split_dataset

    split = split_dataset(load_dataset(dataset), TrainConfig(dataset=dataset))
    return np.asarray(split.X_test, dtype=np.float32)


def train_and_export(into: Path) -> dict[str, Path]:
    """Train every dataset with the default options into a throwaway store; export each model."""
    from training.cli import run
    from training.config import TrainConfig
    from training.export import export_model

    previous = os.environ.get("MLFLOW_TRACKING_URI")
    exported = {}
    with tempfile.TemporaryDirectory(prefix="arm64-store-") as store:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{Path(store) / 'mlflow.db'}"
        try:
            for dataset in DATASETS:
                registered = run(TrainConfig(dataset=dataset))
                exported[registered.name] = export_model(
                    f"models:/{registered.name}/{registered.version}", into / registered.name
                )
        finally:
            if previous is None:
                os.environ.pop("MLFLOW_TRACKING_URI", None)
            else:
                os.environ["MLFLOW_TRACKING_URI"] = previous
    return exported


def build(out: Path, exported: dict[str, Path] | None = None) -> Path:
    """Write the models and their held-out rows into `out` (training them unless `exported`)."""
    if out.exists():
        shutil.rmtree(out)
    (out / "models").mkdir(parents=True)
    (out / "rows").mkdir()
    if exported is None:
        exported = train_and_export(out / "trained")
    entries = []
    for name, directory in sorted(exported.items()):
        model_metadata = json.loads((directory / "metadata.json").read_text())
        dataset = model_metadata["dataset"]
        if dataset not in DATASETS:
            raise ValueError(f"{name} was trained on {dataset!r}, not one of {DATASETS}")
        shutil.copytree(directory, out / "models" / name)
        rows = held_out_rows(dataset)
        np.save(out / "rows" / f"{name}.npy", rows)
        entries.append(
            {
                "name": name,
                "dataset": dataset,
                "task": model_metadata["task"],
                "dir": f"models/{name}",
                "rows": f"rows/{name}.npy",
                "held_out_rows": len(rows),
            }
        )
    shutil.rmtree(out / "trained", ignore_errors=True)
    missing = set(DATASETS) - {entry["dataset"] for entry in entries}
    if missing:
        raise ValueError(f"no model for {', '.join(sorted(missing))}")
    (out / MANIFEST).write_text(json.dumps({"models": entries}, indent=2) + "\n")
    return out
