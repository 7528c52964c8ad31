"""The registry client against a real MLflow local store (tables written by MLflow itself)."""

from pathlib import Path

import pytest

from server.errors import ModelLoadError
from server.registry import RegistryUnavailable, parse_model_uri, registry_for
from tests.conftest import TrainedStore

pytestmark = pytest.mark.integration


def test_local_store_resolves_and_fetches(trained_store: TrainedStore) -> None:
    registry = registry_for(trained_store.tracking_uri, 5)
    version = registry.resolve(parse_model_uri("models:/wine-classifier@production"))
    assert version == "1"
    files = registry.fetch("wine-classifier", version)
    assert files.metadata["name"] == "wine-classifier"
    assert (
        files.model[:2]
        == (trained_store.exported["wine-classifier"] / "model.onnx").read_bytes()[:2]
    )
    assert files.drift_reference is not None


def test_local_store_errors(trained_store: TrainedStore, tmp_path: Path) -> None:
    registry = registry_for(trained_store.tracking_uri, 5)
    with pytest.raises(ModelLoadError, match="no such model or alias"):
        registry.resolve(parse_model_uri("models:/iris-classifier@staging"))
    with pytest.raises(ModelLoadError, match="no such version"):
        registry.fetch("iris-classifier", "99")
    missing = registry_for(f"sqlite:///{tmp_path}/none.db", 5)
    with pytest.raises(RegistryUnavailable, match="make train"):
        missing.resolve(parse_model_uri("models:/iris-classifier@production"))
