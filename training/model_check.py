"""What a registered version must pass before an alias may point at it.

It must be a serving model (model.onnx and metadata.json in the version's artifacts), onnxruntime
must load it and answer its own input example, and it must take the same inputs and give the same
kind of answer as the version it replaces, so that clients of the alias notice nothing but the
new predictions.
"""

import json
from typing import Any

import numpy as np

from training.errors import TrainingError, one_line
from training.registry import (
    EXTRA_FILES_DIR,
    METADATA_FILE,
    MODEL_FILE,
    NotFound,
    Registry,
)


def read_file(registry: Registry, name: str, version: str, path: str, label: str) -> bytes:
    try:
        return registry.version_file(name, version, path)
    except NotFound:
        raise TrainingError(f"{label} is not a serving model: it has no {path}") from None


def read_metadata(registry: Registry, name: str, version: str, label: str) -> dict[str, Any]:
    raw = read_file(registry, name, version, f"{EXTRA_FILES_DIR}/{METADATA_FILE}", label)
    return parse_metadata(raw, label)


def parse_metadata(raw: bytes, label: str) -> dict[str, Any]:
    """A version's metadata.json, with the keys serving needs."""
    try:
        metadata = json.loads(raw)
    except ValueError as exc:
        raise TrainingError(f"{label} has an unreadable {METADATA_FILE}: {exc}") from exc
    if not isinstance(metadata, dict):
        raise TrainingError(f"{label} has an unreadable {METADATA_FILE}: not a JSON object")
    for key in ("features", "task", "input_name", "outputs"):
        if key not in metadata:
            raise TrainingError(f"{label} has no {key!r} in its {METADATA_FILE}")
    return metadata


def check_runs(onnx: bytes, metadata: dict[str, Any], label: str) -> None:
    """onnxruntime loads the model and answers the input example with the promised outputs."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's errors have no common public type
        raise TrainingError(
            f"{label}: onnxruntime cannot load {MODEL_FILE}: {one_line(exc)}"
        ) from exc
    inputs = session.get_inputs()
    if [i.name for i in inputs] != [metadata["input_name"]]:
        raise TrainingError(
            f"{label}: {MODEL_FILE} takes {[i.name for i in inputs]}, "
            f"but its metadata says {metadata['input_name']!r}"
        )
    width = inputs[0].shape[-1]
    if width != len(metadata["features"]):
        raise TrainingError(
            f"{label}: {MODEL_FILE} takes {width} features, "
            f"but its metadata lists {len(metadata['features'])}"
        )
    missing = set(metadata["outputs"].values()) - {o.name for o in session.get_outputs()}
    if missing:
        raise TrainingError(f"{label}: {MODEL_FILE} has no output {', '.join(sorted(missing))}")
    example = np.asarray(
        metadata.get("input_example") or [[0.0] * len(metadata["features"])], dtype=np.float32
    )
    try:
        session.run(None, {metadata["input_name"]: example})
    except Exception as exc:
        raise TrainingError(
            f"{label}: onnxruntime cannot run {MODEL_FILE} on its input example: {one_line(exc)}"
        ) from exc


def check_replaces(candidate: dict[str, Any], current: dict[str, Any], label: str) -> None:
    """Refuse a version whose inputs or kind of answer differ from the one it replaces."""
    for key, what in (("features", "features"), ("task", "task"), ("classes", "classes")):
        if candidate.get(key) != current.get(key):
            raise TrainingError(
                f"{label} has {what} {candidate.get(key)}, but the version it would replace has "
                f"{current.get(key)}"
            )


def check_promotable(registry: Registry, name: str, version: str, replaces: str | None) -> None:
    """Raise TrainingError unless `version` may take over from version `replaces`."""
    label = f"{name} version {version}"
    metadata = read_metadata(registry, name, version, label)
    check_runs(read_file(registry, name, version, MODEL_FILE, label), metadata, label)
    if replaces is not None and replaces != version:
        current = read_metadata(registry, name, replaces, f"{name} version {replaces}")
        check_replaces(metadata, current, label)
