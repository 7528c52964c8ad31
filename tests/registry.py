"""Helpers the tests use to look at an MLflow registry from the outside."""

from dataclasses import dataclass

import mlflow
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient


def reset_mlflow_globals() -> None:
    """Forget the tracking and registry URIs a test set in-process (training.tracking.connect)."""
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]  # None is how MLflow unsets it
    mlflow.set_registry_uri(None)  # type: ignore[arg-type]


@dataclass(frozen=True)
class RegistrySnapshot:
    """What a failed command must leave unchanged."""

    exists: bool
    versions: tuple[str, ...]
    aliases: dict[str, str]
    tags: dict[str, str]


def snapshot(client: MlflowClient, name: str) -> RegistrySnapshot:
    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        return RegistrySnapshot(False, (), {}, {})
    versions = sorted((v.version for v in client.search_model_versions(f"name='{name}'")), key=int)
    return RegistrySnapshot(
        True,
        tuple(str(v) for v in versions),
        {alias: str(version) for alias, version in model.aliases.items()},
        dict(model.tags),
    )


def version_run(client: MlflowClient, name: str, version: str) -> Run:
    """The training run behind a registered version."""
    run_id = client.get_model_version(name, version).run_id
    assert run_id is not None, f"{name} version {version} has no run"
    return client.get_run(run_id)
