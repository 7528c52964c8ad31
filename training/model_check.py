"""What a registered version must pass before an alias may point at it.

It must be a serving model that the server would load: its metadata must keep the contract
(`server.contract`), its model file must agree with the metadata, and it must answer its own input
example with the outputs the contract promises; the check is the server's own loader, so promotion
and serving can never disagree. It must also take the same inputs and give the same kind of
answer as the version it replaces, so that clients of the alias notice nothing but the new
predictions.
"""

import tempfile
from pathlib import Path

from server.contract import ModelContract
from server.errors import ModelLoadError
from server.model import Origin, load_model
from server.registry import read_model_dir
from training.errors import TrainingError, one_line


def download_version(name: str, version: str, into: Path) -> Path:
    """The version's model directory (MLflow onnx flavor), downloaded into `into`."""
    import mlflow

    return Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/{version}", dst_path=str(into)
        )
    )


def load_checked(local: Path, label: str) -> ModelContract:
    """The version's contract, if the server would load and serve it; TrainingError otherwise."""
    try:
        model = load_model(read_model_dir(local), Origin(label, "registry", label))
    except ModelLoadError as exc:
        raise TrainingError(f"{label} would not be served: {one_line(exc)}") from exc
    return model.contract


def check_replaces(candidate: ModelContract, current: ModelContract, label: str) -> None:
    """Refuse a version whose inputs or kind of answer differ from the one it replaces."""
    for what in ("features", "task", "classes"):
        mine, theirs = getattr(candidate, what), getattr(current, what)
        if mine != theirs:
            raise TrainingError(
                f"{label} has {what} {mine}, but the version it would replace has {theirs}"
            )


def check_promotable(name: str, version: str, replaces: str | None) -> None:
    """Raise TrainingError unless `version` may take over from version `replaces`."""
    label = f"{name} version {version}"
    with tempfile.TemporaryDirectory() as tmp:
        candidate = load_checked(download_version(name, version, Path(tmp) / "candidate"), label)
        if replaces is not None and replaces != version:
            current_label = f"{name} version {replaces}"
            current = load_checked(
                download_version(name, replaces, Path(tmp) / "current"), current_label
            )
            check_replaces(candidate, current, label)
