"""What a registered version must pass before an alias may point at it.

It must be a serving model that the server would load: its metadata must keep the contract
(`server.contract`), its model file must agree with the metadata, and it must answer its own input
example with the outputs the contract promises; the check is the server's own loader, so promotion
and serving can never disagree. It must also take the same inputs and give the same kind of
answer as the version it replaces, so that clients of the alias notice nothing but the new
predictions. The files are read through the registry (training.registry), without MLflow.
"""

from server.contract import (
    EXTRA_FILES_DIR,
    METADATA_FILE,
    ContractError,
    ModelContract,
    parse_metadata,
)
from server.errors import ModelLoadError
from server.model import ModelFiles, Origin, load_model, parse_json_file
from server.runtime import RuntimeLoadError, runtime_kind
from training.errors import TrainingError, one_line
from training.registry import NotFound, Registry


def _refused(label: str, reason: object) -> TrainingError:
    return TrainingError(f"{label} would not be served: {one_line(reason)}")


def _read(registry: Registry, name: str, version: str, path: str, label: str) -> bytes:
    try:
        return registry.version_file(name, version, path)
    except NotFound:
        raise _refused(label, f"it has no {path}") from None


def _metadata(registry: Registry, name: str, version: str, label: str) -> dict[str, object]:
    raw = _read(registry, name, version, f"{EXTRA_FILES_DIR}/{METADATA_FILE}", label)
    try:
        return parse_json_file(raw, METADATA_FILE)
    except ModelLoadError as exc:
        raise _refused(label, exc) from exc


def fetch_files(registry: Registry, name: str, version: str, label: str) -> ModelFiles:
    """The files the server would load for a version: its metadata and the model file it names."""
    metadata = _metadata(registry, name, version, label)
    try:
        model_file = runtime_kind(str(metadata.get("framework") or "") or None).model_file
    except RuntimeLoadError as exc:
        raise _refused(label, exc) from exc
    return ModelFiles(
        model=_read(registry, name, version, model_file, label),
        metadata=metadata,
        drift_reference=None,  # optional for serving; not part of what promotion checks
    )


def load_checked(files: ModelFiles, label: str) -> ModelContract:
    """The version's contract, if the server would load and serve it; TrainingError otherwise."""
    try:
        model = load_model(files, Origin(label, "registry", label))
    except ModelLoadError as exc:
        raise _refused(label, exc) from exc
    return model.contract


def check_replaces(candidate: ModelContract, current: ModelContract, label: str) -> None:
    """Refuse a version whose inputs or kind of answer differ from the one it replaces."""
    for what in ("features", "task", "classes"):
        mine, theirs = getattr(candidate, what), getattr(current, what)
        if mine != theirs:
            raise TrainingError(
                f"{label} has {what} {mine}, but the version it would replace has {theirs}"
            )


def check_promotable(registry: Registry, name: str, version: str, replaces: str | None) -> None:
    """Raise TrainingError unless `version` may take over from version `replaces`."""
    label = f"{name} version {version}"
    candidate = load_checked(fetch_files(registry, name, version, label), label)
    if replaces is not None and replaces != version:
        current_label = f"{name} version {replaces}"
        try:
            # Its inputs are what matters here; it is already serving.
            current = parse_metadata(_metadata(registry, name, replaces, current_label))
        except ContractError as exc:
            raise _refused(current_label, exc) from exc
        check_replaces(candidate, current, label)
