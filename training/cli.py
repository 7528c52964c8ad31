"""The training command: one pipeline, one-line errors for user mistakes, exit codes for scripts."""

import sys
import time
from typing import TYPE_CHECKING

from training.config import TrainConfig, parse_config
from training.errors import TrainingError, one_line

if TYPE_CHECKING:
    from training.datasets import Dataset
    from training.estimator import Split
    from training.registration import Registered


def run(config: TrainConfig) -> "Registered":
    """Train, evaluate, export, check parity, and register; print a short report as it goes."""
    config.validate()
    # Imported here, after the options are checked: scikit-learn, skl2onnx and MLflow take
    # seconds to import, and a mistyped option is refused without waiting for them.
    from training import estimator
    from training.datasets import load_dataset
    from training.tracking import connect

    dataset = load_dataset(config.dataset)
    name = config.model_name or dataset.default_model_name
    uri = connect()
    split = estimator.split_dataset(dataset, config)
    return fit_and_register(dataset, split, config, name, uri)


def fit_and_register(
    dataset: "Dataset",
    split: "Split",
    config: TrainConfig,
    name: str,
    uri: str,
    *,
    provenance: dict[str, str] | None = None,
) -> "Registered":
    """Fit on the split, evaluate, export, check parity, register: `make train`'s pipeline.

    `provenance` (where the data came from) is logged with the run's parameters and kept in
    the model's metadata.
    """
    import pandas as pd

    from training import drift_reference, estimator, onnx_export
    from training.package import serving_metadata
    from training.registration import log_and_register
    from training.tracking import redacted

    started = time.perf_counter()
    model = estimator.fit(dataset, split, config)
    metrics = estimator.evaluate(model, dataset, split)
    exported = onnx_export.export(model, len(dataset.features))
    gap = onnx_export.check_parity(model, exported, split.X_test)
    rows = f"{len(split.X_train)} train / {len(split.X_test)} test rows"
    print(f"trained {name} on {dataset.name} ({rows})")
    for metric, value in metrics.items():
        print(f"  {metric:<9} {value:.4f}")
    print(f"  ONNX parity: {len(split.X_test)} rows agree (largest gap {gap:.2g})")

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
    registered = log_and_register(
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
    aliases = f" with alias {', '.join(registered.aliases)}" if registered.aliases else ""
    print(
        f"registered {registered.name} version {registered.version}{aliases} "
        f"(run {registered.run_id}, {time.perf_counter() - started:.1f}s) in {redacted(uri)}"
    )
    return registered


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
