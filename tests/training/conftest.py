"""Shared fixtures for the training unit tests: an isolated MLflow store per test."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.registry import reset_mlflow_globals


@pytest.fixture
def tracking_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh SQLite store in tmp_path, set as MLFLOW_TRACKING_URI; artifacts go beside it."""
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    # mlflow.set_registry_uri writes this variable; record it so monkeypatch restores it.
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    yield uri
    reset_mlflow_globals()


@pytest.fixture
def client(tracking_uri: str) -> MlflowClient:
    """A client on the test's store, created the way a second machine would see it."""
    (Path(tracking_uri.removeprefix("sqlite:///")).parent).mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
