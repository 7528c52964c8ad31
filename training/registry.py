"""The model registry as the lifecycle commands see it, without importing MLflow.

MLflow's Python package takes seconds to import, while listing versions or moving an alias takes
a handful of reads and two writes. Two backends, chosen by the tracking URI as the server does:
- an MLflow tracking server (http/https): its REST API (training.registry_rest);
- the local store (sqlite:///...): MLflow's registry tables (training.registry_sqlite).

Changes go through `Registry.update(name)`: one caller at a time gets a fresh view of the model
and makes its writes as a unit (a SQLite transaction; a lock and undo over REST).
"""

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from training.errors import TrainingError
from training.tracking import tracking_uri

PRODUCTION_ALIAS = "production"
HISTORY_TAG = "alias_history"
FEATURES_TAG = "features"
TASK_TAG = "task"


class RegistryError(Exception):
    """The registry failed or could not be reached; the message says which."""


class NotFound(RegistryError):
    """The registry answered that a model, version, run or file does not exist."""


class AlreadyExists(RegistryError):
    """The registry refused to create something whose name is taken."""


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    aliases: dict[str, str]  # alias -> version
    tags: dict[str, str]


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str
    created: datetime
    run_id: str | None


@dataclass(frozen=True)
class RunData:
    """A training run's parameters and final metrics."""

    params: dict[str, str]
    metrics: dict[str, float]


class Update(Protocol):
    """Exclusive access to one registered model; its writes stand or fall together."""

    model: RegisteredModel  # read after exclusive access was gained

    def versions(self) -> set[str]: ...
    def set_alias(self, alias: str, version: str) -> None: ...
    def delete_alias(self, alias: str) -> None: ...
    def set_tag(self, key: str, value: str) -> None: ...
    def delete_tag(self, key: str) -> None: ...


class Registry(Protocol):
    uri: str

    def model(self, name: str) -> RegisteredModel:
        """Raise NotFound when no model has that name."""
        ...

    def model_names(self) -> list[str]: ...
    def versions(self, name: str) -> list[ModelVersion]: ...
    def run(self, run_id: str) -> RunData: ...

    def version_file(self, name: str, version: str, path: str) -> bytes:
        """One file of a version's model directory, e.g. model.onnx or extra_files/metadata.json."""
        ...

    def update(self, name: str, purpose: str = "") -> AbstractContextManager[Update]:
        """Exclusive access to `name`; `purpose` tells anyone who has to wait what they wait for."""
        ...


Notice = Callable[[str], None]


def refuse_other_inputs(name: str, tags: dict[str, str], features: list[str], task: str) -> None:
    """A new version must take the inputs and do the task its registered model records."""
    registered_features = tags.get(FEATURES_TAG)
    if registered_features is not None and json.loads(registered_features) != features:
        raise TrainingError(
            f"registered model {name!r} expects features {json.loads(registered_features)}, "
            f"but this dataset has {features}; choose another --model-name"
        )
    registered_task = tags.get(TASK_TAG)
    if registered_task is not None and registered_task != task:
        raise TrainingError(
            f"registered model {name!r} is a {registered_task} model, not {task}; "
            "choose another --model-name"
        )


def open_registry(uri: str | None = None, notice: Notice | None = None) -> Registry:
    """The registry at `uri`, or at MLFLOW_TRACKING_URI, or the local store in .mlflow/."""
    uri = uri or tracking_uri()
    if uri.startswith(("http://", "https://")):
        from training.registry_rest import RestRegistry

        return RestRegistry(uri, notice=notice)
    if uri.startswith("sqlite:///"):
        from training.registry_sqlite import SqliteRegistry

        return SqliteRegistry(Path(uri.removeprefix("sqlite:///")), uri=uri)
    raise TrainingError(
        "the lifecycle commands work with an MLflow tracking server (MLFLOW_TRACKING_URI="
        f"http(s)://...) or a local store (sqlite:///...), not {uri!r}"
    )
