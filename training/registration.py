"""Log a trained model to MLflow and register it as a new version, all or nothing."""

import json
import tempfile
from dataclasses import dataclass
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from server.contract import DRIFT_REFERENCE_FILE, METADATA_FILE
from training.registry import FEATURES_TAG, PRODUCTION_ALIAS, TASK_TAG, refuse_other_inputs
from training.tracking import artifact_root


def _pinned(*packages: str) -> list[str]:
    return [f"{package}=={installed_version(package)}" for package in packages]


# Stated, not inferred: MLflow's inference runs a subprocess that imports the model (7 s per
# flavor here) and, failing to narrow it down, pins the whole training environment.
ONNX_REQUIREMENTS = ("onnx", "onnxruntime", "numpy")
SKLEARN_REQUIREMENTS = ("scikit-learn", "skops", "numpy")


@dataclass(frozen=True)
class Registered:
    name: str
    version: str
    run_id: str
    aliases: list[str]


def check_compatible(client: MlflowClient, name: str, features: list[str], task: str) -> bool:
    """Return whether the registered model exists; refuse one that expects other inputs."""
    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return False
        raise
    refuse_other_inputs(name, dict(model.tags), features, task)
    return True


def experiment_id(client: MlflowClient, name: str, uri: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    return str(client.create_experiment(name, artifact_location=artifact_root(uri)))


@dataclass(frozen=True)
class LoggedRun:
    """A finished training run whose ONNX model can be registered as a version."""

    run_id: str
    model_uri: str
    model_id: str | None
    sklearn_model_uri: str
    model_existed: bool


def log_run(
    *,
    uri: str,
    name: str,
    params: dict[str, Any],
    metrics: dict[str, float],
    onnx_model: Any,
    sklearn_model: Any,
    metadata: dict[str, Any],
    drift_reference: dict[str, Any],
    example: pd.DataFrame,
    outputs_example: dict[str, np.ndarray],
) -> LoggedRun:
    """Log the run: parameters, metrics, the ONNX model with its serving files, the forest."""
    import mlflow
    from mlflow.models import infer_signature

    client = MlflowClient()
    existed = check_compatible(client, name, metadata["features"], metadata["task"])
    signature = infer_signature(example, outputs_example)
    with tempfile.TemporaryDirectory() as tmp:
        extra = []
        for file_name, content in (
            (METADATA_FILE, metadata),
            (DRIFT_REFERENCE_FILE, drift_reference),
        ):
            path = Path(tmp) / file_name
            path.write_text(json.dumps(content, indent=2))
            extra.append(str(path))
        with mlflow.start_run(experiment_id=experiment_id(client, name, uri)) as run:
            mlflow.log_params(params)
            mlflow.log_metrics(metrics)
            mlflow.log_dict(drift_reference, DRIFT_REFERENCE_FILE)
            model_info = mlflow.onnx.log_model(
                onnx_model,
                name="model",
                signature=signature,
                input_example=example,
                extra_files=extra,
                pip_requirements=_pinned(*ONNX_REQUIREMENTS),
                onnx_execution_providers=["CPUExecutionProvider"],
            )
            # The scikit-learn form is kept beside it (unregistered) so benchmarks can serve both.
            sklearn_info = mlflow.sklearn.log_model(
                sklearn_model,
                name="sklearn-model",
                signature=signature,
                input_example=example,
                pip_requirements=_pinned(*SKLEARN_REQUIREMENTS),
                # We wrote this file ourselves a moment ago; its tree arrays are ours to trust.
                skops_trusted_types=["sklearn.tree._tree.Tree"],
            )
    return LoggedRun(
        run_id=run.info.run_id,
        model_uri=model_info.model_uri,
        model_id=model_info.model_id,
        sklearn_model_uri=sklearn_info.model_uri,
        model_existed=existed,
    )


def register_version(logged: LoggedRun, name: str, metadata: dict[str, Any]) -> Registered:
    """Register the logged ONNX model as a new version; undo the registration if a step fails.

    The first version of a new model also gets the production alias.
    """
    client = MlflowClient()
    # The client calls rather than mlflow.register_model, which prints progress to stderr and
    # cannot tell us whether it created the registered model (so undo could delete another's).
    version = None
    created_model = False
    try:
        if not logged.model_existed:
            client.create_registered_model(
                name,
                tags={
                    FEATURES_TAG: json.dumps(metadata["features"]),
                    TASK_TAG: str(metadata["task"]),
                },
            )
            created_model = True
        version = client.create_model_version(
            name,
            source=logged.model_uri,
            run_id=logged.run_id,
            model_id=logged.model_id,
            tags={
                "dataset": str(metadata["dataset"]),
                "task": str(metadata["task"]),
                "sklearn_model_uri": logged.sklearn_model_uri,
            },
        ).version
        aliases = []
        if created_model:
            client.set_registered_model_alias(name, PRODUCTION_ALIAS, version)
            aliases.append(PRODUCTION_ALIAS)
    except BaseException:
        _undo_registration(client, name, logged.run_id, created_model=created_model)
        raise
    return Registered(name=name, version=str(version), run_id=logged.run_id, aliases=aliases)


def log_and_register(**run: Any) -> Registered:
    """log_run, then register_version: the whole of what training writes to MLflow."""
    return register_version(log_run(**run), run["name"], run["metadata"])


def _undo_registration(
    client: MlflowClient, name: str, run_id: str, *, created_model: bool
) -> None:
    """Leave the registry as it was: no half-registered version, no empty new model.

    The versions to delete are found by run id rather than taken from create_model_version's
    answer: a request can succeed on the server and still fail (or be interrupted) on our side.
    """
    try:
        if created_model:
            client.delete_registered_model(name)
            return
        for version in client.search_model_versions(f"name='{name}' and run_id='{run_id}'"):
            client.delete_model_version(name, version.version)
    except MlflowException:
        pass  # the original error is the one to report
