from pathlib import Path

import pytest

from server.registry import (
    ModelReference,
    RegistryUnavailable,
    RestRegistry,
    SqliteRegistry,
    parse_model_uri,
    registry_for,
)
from tests.processes import free_port


def test_parse_model_uri() -> None:
    assert parse_model_uri("models:/iris-classifier@production") == ModelReference(
        "models:/iris-classifier@production", name="iris-classifier", alias="production"
    )
    assert parse_model_uri("models:/iris-classifier/3").version == "3"
    assert parse_model_uri("/opt/model").path == Path("/opt/model")
    assert parse_model_uri("file:///opt/model").path == Path("/opt/model")
    for bad in ("models:/", "models:/x@", "models:/x/latest", "models:/@alias"):
        with pytest.raises(ValueError, match="expected models"):
            parse_model_uri(bad)


def test_registry_for_chooses_by_scheme(tmp_path: Path) -> None:
    assert isinstance(registry_for("http://mlflow:5000", 1), RestRegistry)
    assert isinstance(registry_for(f"sqlite:///{tmp_path}/mlflow.db", 1), SqliteRegistry)
    with pytest.raises(ValueError, match="MLFLOW_TRACKING_URI"):
        registry_for("postgresql://db/mlflow", 1)


def test_unreachable_server_is_unavailable_not_missing() -> None:
    registry = registry_for(f"http://127.0.0.1:{free_port()}", 1)
    with pytest.raises(RegistryUnavailable, match="cannot reach MLflow"):
        registry.resolve(parse_model_uri("models:/iris-classifier@production"))
