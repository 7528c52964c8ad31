"""Shared fixtures for the training unit tests: an isolated MLflow store per test."""

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.registry import reset_mlflow_globals
from training.cli import main


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, migrated SQLite store: creating one costs seconds, copying it costs nothing."""
    database = tmp_path_factory.mktemp("empty-store") / "mlflow.db"
    uri = f"sqlite:///{database}"
    MlflowClient(tracking_uri=uri, registry_uri=uri).search_experiments()
    reset_mlflow_globals()
    return database


@pytest.fixture
def tracking_uri(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_store: Path
) -> Iterator[str]:
    """A fresh SQLite store in tmp_path, set as MLFLOW_TRACKING_URI; artifacts go beside it."""
    database = tmp_path / "store" / "mlflow.db"
    database.parent.mkdir()
    shutil.copyfile(empty_store, database)
    uri = f"sqlite:///{database}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    # mlflow.set_registry_uri (in training.tracking.connect) writes this variable. setenv, not
    # delenv: delenv of an unset variable records nothing, so the test's value would outlive it.
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
    yield uri
    reset_mlflow_globals()


@pytest.fixture
def client(tracking_uri: str) -> MlflowClient:
    """A client on the test's store, created the way a second machine would see it."""
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


Train = Callable[..., Result]


@pytest.fixture
def train(tracking_uri: str, capsys: pytest.CaptureFixture[str]) -> Train:
    """Run the training command in-process, as `python -m training` would, with a small forest."""

    def run(*args: str) -> Result:
        capsys.readouterr()
        code = main(["--n-estimators=5", *args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run
