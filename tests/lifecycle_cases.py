"""Registry states the lifecycle tests need that training alone refuses to make."""

from pathlib import Path
from urllib.parse import urlparse

from mlflow.tracking import MlflowClient


def add_foreign_version(client: MlflowClient, name: str, donor: str) -> str:
    """Register the donor model's latest files as a new version of `name` (other features)."""
    donor_version = max(
        client.search_model_versions(f"name='{donor}'"), key=lambda v: int(v.version)
    )
    source = str(donor_version.source)
    created = client.create_model_version(
        name,
        source=source,
        run_id=donor_version.run_id,
        # A server insists that a models:/<id> source comes with its id.
        model_id=source.removeprefix("models:/"),
    )
    return str(created.version)


def corrupt_onnx(client: MlflowClient, name: str, version: str) -> None:
    """Overwrite a version's model.onnx in a local (file://) artifact store with garbage."""
    source = str(client.get_model_version(name, version).source)
    model_id = source.removeprefix("models:/")
    location = urlparse(client.get_logged_model(model_id).artifact_location)
    (Path(location.path) / "model.onnx").write_bytes(b"not an onnx model")
