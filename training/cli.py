"""The training command: one pipeline, one-line errors for user mistakes, exit codes for scripts."""

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from training.config import TrainConfig, parse_config
from training.datasets import default_model_name
from training.errors import TrainingError, one_line
from training.progress import Progress
from training.tracking import check_store, redacted, tracking_uri

if TYPE_CHECKING:
    from training.datasets import Dataset
    from training.estimator import Estimator, Split
    from training.onnx_export import ExportedModel
    from training.registration import LoggedRun, Registered


def run(config: TrainConfig) -> "Registered":
    """Train, evaluate, export, check parity, and register, naming each stage as it starts."""
    config.validate()
    progress = Progress()
    uri = tracking_uri()
    check_store(uri)  # an unreachable tracking server is refused before any work
    name = config.model_name or default_model_name(config.dataset)
    progress.line(
        f"training {name} on the {config.dataset} dataset; registering it in {redacted(uri)}"
    )

    # scikit-learn, skl2onnx and MLflow take seconds to import: each is imported by the stage
    # that needs it, after the options are checked, so the wait is shown where it happens.
    with progress.stage(f"loading the {config.dataset} dataset"):
        from training import estimator
        from training.datasets import load_dataset

        dataset = load_dataset(config.dataset)
        split = estimator.split_dataset(dataset, config)
    _refuse_other_inputs_early(uri, name, dataset.features, dataset.task)
    registered = fit_and_register(dataset, split, config, name, uri, progress=progress)
    for line in next_steps(uri, registered, dataset.task):
        progress.line(line)
    return registered


def fit_and_register(
    dataset: "Dataset",
    split: "Split",
    config: TrainConfig,
    name: str,
    uri: str,
    *,
    provenance: dict[str, str] | None = None,
    progress: Progress | None = None,
) -> "Registered":
    """Fit on the split, evaluate, export, check parity, register: `make train`'s pipeline.

    Each stage is named as it starts. `provenance` (where the data came from) is logged with the
    run's parameters and kept in the model's metadata.
    """
    progress = progress or Progress()
    depth = f"max depth {config.max_depth}" if config.max_depth else "no depth limit"
    with progress.stage(f"fitting a random forest ({config.n_estimators} trees, {depth})") as stage:
        from training import estimator

        model = estimator.fit(dataset, split, config)
        stage.detail = f"{len(split.X_train)} training rows"
    with progress.stage(f"evaluating on {len(split.X_test)} held-out rows") as stage:
        metrics = estimator.evaluate(model, dataset, split)
        stage.detail = ", ".join(f"{key} {value:.4f}" for key, value in metrics.items())
    with progress.stage("exporting to ONNX"):
        from training import onnx_export

        exported = onnx_export.export(model, len(dataset.features))
    with progress.stage(f"checking ONNX against scikit-learn on {len(split.X_test)} rows") as stage:
        gap = onnx_export.check_parity(model, exported, split.X_test)
        stage.detail = f"all agree, largest gap {gap:.2g}"

    with progress.stage("logging the run to MLflow"):
        logged = _log_run(uri, name, config, dataset, split, model, metrics, exported, provenance)
    with progress.stage(f"registering {name}") as stage:
        from training.registration import register_version

        registered = register_version(logged.run, name, logged.metadata)
        aliases = f" with alias {', '.join(registered.aliases)}" if registered.aliases else ""
        stage.detail = f"version {registered.version}{aliases}"
    progress.line(
        f"registered {registered.name} version {registered.version}{aliases} "
        f"(run {registered.run_id}) in {progress.elapsed:.1f}s"
    )
    return registered


@dataclass(frozen=True)
class _Logged:
    run: "LoggedRun"
    metadata: dict[str, Any]


def _log_run(
    uri: str,
    name: str,
    config: TrainConfig,
    dataset: "Dataset",
    split: "Split",
    model: "Estimator",
    metrics: dict[str, float],
    exported: "ExportedModel",
    provenance: dict[str, str] | None,
) -> _Logged:
    import pandas as pd

    from training import drift_reference, onnx_export
    from training.package import serving_metadata
    from training.registration import log_run
    from training.tracking import connect

    connect()
    example = split.X_test[:2]
    session = onnx_export.session_for(exported.proto)
    outputs = dict(
        zip(
            [o.name for o in session.get_outputs()],
            session.run(None, {exported.input_name: example}),
            strict=True,
        )
    )
    metadata = serving_metadata(
        name=name, dataset=dataset, exported=exported, example=example, metrics=metrics
    )
    if provenance:
        metadata["training_data"] = provenance
    params = {
        "dataset": dataset.name,
        "n_estimators": config.n_estimators,
        "max_depth": config.max_depth,
        "test_size": config.test_size,
        "random_state": config.random_state,
        **(provenance or {}),
    }
    run = log_run(
        uri=uri,
        name=name,
        params=params,
        metrics=metrics,
        onnx_model=exported.proto,
        sklearn_model=model,
        metadata=metadata,
        drift_reference=drift_reference.build_reference(dataset, split.X_train, split.y_train),
        example=pd.DataFrame(example, columns=dataset.features),
        outputs_example=outputs,
    )
    return _Logged(run, metadata)


def _refuse_other_inputs_early(uri: str, name: str, features: list[str], task: str) -> None:
    """Refuse a name registered for other inputs before fitting; registration checks again."""
    from training.registry import NotFound, RegistryError, open_registry, refuse_other_inputs

    try:
        model = open_registry(uri).model(name)
    except (NotFound, RegistryError, TrainingError):
        return  # not registered yet, no store yet, or a store only MLflow's client can read
    refuse_other_inputs(name, model.tags, features, task)


def next_steps(uri: str, registered: "Registered", task: str) -> list[str]:
    """What to run next: serve the first version, or promote a later one."""
    from training.lifecycle import DEFAULT_MODEL, main_metric
    from training.registry import PRODUCTION_ALIAS, RegistryError, open_registry

    model = "" if registered.name == DEFAULT_MODEL else f" MODEL={registered.name}"
    if PRODUCTION_ALIAS in registered.aliases:
        return [
            f"version {registered.version} is the first of {registered.name}, so production "
            f"serves it: `make serve{model}` to serve it here"
        ]
    promote = f"`make promote{model} VERSION={registered.version}` to serve this one"
    try:
        registry = open_registry(uri)
        production = registry.model(registered.name).aliases.get(PRODUCTION_ALIAS)
        runs = {v.version: v.run_id for v in registry.versions(registered.name)}
        metrics, serving = (
            registry.run(run_id).metrics if (run_id := runs.get(version or "")) else {}
            for version in (registered.version, production)
        )
    except (RegistryError, TrainingError):
        return [f"{promote} (promotion compares it with the version production serves)"]
    if production is None:
        return [f"no version serves as production yet; {promote}"]
    lines = [f"production still serves version {production}; {promote}"]
    metric, higher_is_better = main_metric(task)
    if metric is not None and metric in metrics and metric in serving:
        ours, theirs = metrics[metric], serving[metric]
        lines.append(f"  {metric}: {theirs:.4f} in production, {ours:.4f} for this version")
        if ours != theirs and (ours > theirs) != higher_is_better:
            lines.append(f"  it is worse on {metric}, so promotion refuses it unless FORCE=1")
    return lines


def main(argv: list[str] | None = None) -> int:
    try:
        run(parse_config(argv))  # run() checks the options before its heavy imports
    except TrainingError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; nothing was registered", file=sys.stderr)
        return 130
    except Exception as exc:  # an MLflow or storage failure: one line, not a traceback
        from mlflow.exceptions import MlflowException

        if isinstance(exc, (MlflowException, OSError)):
            print(f"error: MLflow: {one_line(exc)}", file=sys.stderr)
            return 1
        raise
    return 0
