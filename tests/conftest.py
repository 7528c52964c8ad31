"""Shared fixtures: a local MLflow store with the three bundled models trained into it."""

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.registry import reset_mlflow_globals


@dataclass(frozen=True)
class TrainedStore:
    tracking_uri: str
    exported: dict[str, Path]  # registered model name -> exported model directory


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory: pytest.TempPathFactory) -> TrainedStore:
    """iris, wine and diabetes trained once per session into a throwaway SQLite store."""
    from training.cli import run
    from training.config import TrainConfig
    from training.export import export_model

    root = tmp_path_factory.mktemp("mlflow-store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    exported = {}
    try:
        for dataset in ("iris", "wine", "diabetes"):
            registered = run(TrainConfig(dataset=dataset))
            exported[registered.name] = export_model(
                f"models:/{registered.name}/{registered.version}",
                root / "exported" / registered.name,
            )
    finally:
        reset_mlflow_globals()  # connect() set MLflow's in-process URIs to this store
        if previous is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous
    return TrainedStore(uri, exported)
