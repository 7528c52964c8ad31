"""`make retrain`: train a new version on labelled production predictions; alias `challenger`.

The data rule, in full:
1. Rows: the most recent `--max-rows` predictions of the model that have feedback and were made
   in the last `--since-hours`, whichever version or variant answered them (the features are
   what production sent; the label is what feedback said).
2. Held-out rows: the most recent `--test-size` share of them, by prediction time, so the new
   version is scored on the traffic it is about to serve, never on rows it was trained on.
3. Original data (optional): with `--original-share s` (0 <= s < 1), rows from the original
   dataset's training split (seeded by `--random-state`) are added to the training rows only,
   as many as make them a share s of the training set (all of them at most). s = 0, the
   default, trains on production data alone.
Then the same pipeline as `make train` (fit, evaluate, export to ONNX, parity check on every
held-out row, register), with the data's provenance logged to the run. The new version gets the
alias `challenger` through the lifecycle's promote, so shadowing servers pick it up.
"""

import argparse
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from training.config import TrainConfig
from training.errors import TrainingError, one_line
from training.lifecycle import DEFAULT_MODEL

if TYPE_CHECKING:
    from mlflow.entities.model_registry import RegisteredModel
    from mlflow.tracking import MlflowClient

    from server.store import LabelledRow
    from training.datasets import Dataset

CHALLENGER_ALIAS = "challenger"


@dataclass(frozen=True)
class RetrainOptions:
    model: str = DEFAULT_MODEL
    store_uri: str = ""
    min_labels: int = 200
    max_rows: int = 50_000
    since_hours: float = 168.0
    original_share: float = 0.0
    test_size: float = 0.2
    n_estimators: int = 100
    max_depth: int | None = 5
    random_state: int = 42
    alias: str = CHALLENGER_ALIAS

    def validate(self) -> None:
        if self.min_labels < 10:
            raise TrainingError(f"--min-labels must be at least 10, got {self.min_labels}")
        if self.max_rows < self.min_labels:
            raise TrainingError("--max-rows must be at least --min-labels")
        if not 0.0 <= self.original_share < 1.0:
            raise TrainingError(f"--original-share must be in [0, 1), got {self.original_share}")
        if self.since_hours <= 0:
            raise TrainingError(f"--since-hours must be positive, got {self.since_hours}")
        check_store_uri(self.store_uri)
        TrainConfig(
            n_estimators=self.n_estimators,
            max_depth=self.max_depth,
            test_size=self.test_size,
            random_state=self.random_state,
        ).validate()


def check_store_uri(uri: str) -> None:
    """Refuse a prediction store URI the store cannot use, before any work."""
    from server.store import PredictionStore, StoreError

    try:
        PredictionStore(uri)
    except StoreError as exc:
        raise TrainingError(str(exc)) from exc


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def original_rows(available: int, production_train: int, share: float) -> int:
    """How many original rows make them `share` of the training set (all of them at most)."""
    if share <= 0:
        return 0
    return min(available, round(share / (1 - share) * production_train))


def run(options: RetrainOptions) -> str:
    """Build the training set, train, register, point the alias; return what happened."""
    options.validate()
    from server.store import PredictionStore, StoreError, redact
    from training import estimator, lifecycle
    from training.cli import fit_and_register
    from training.datasets import Dataset, load_dataset
    from training.registry import open_registry
    from training.tracking import connect

    uri = connect()
    client = registry_client()
    model = registered_model(client, options.model)
    production = model.aliases.get("production")
    if production is None:
        raise TrainingError(f"{options.model} has no production version to retrain")
    base = client.get_model_version(options.model, str(production))
    dataset_name = base.tags.get("dataset")
    if not dataset_name:
        raise TrainingError(f"{options.model} version {production} does not name its dataset")
    original = load_dataset(dataset_name)

    store = PredictionStore(options.store_uri)
    now = time.time()
    since = now - options.since_hours * 3600
    try:
        connection = store.connect()
        try:
            found = store.labelled(connection, options.model, since, now, options.max_rows)
            recorded = store.count_predictions(connection, options.model, since, now)
        finally:
            connection.close()
    except StoreError as exc:
        raise TrainingError(str(exc)) from exc

    features, targets, skipped = _decode(found, original)
    if len(targets) < options.min_labels:
        raise TrainingError(
            f"{len(targets)} labelled predictions of {options.model} in {redact(store.uri)} "
            f"over the last {options.since_hours:g} h; retraining needs at least "
            f"{options.min_labels} (--min-labels)"
        )
    n_test = max(1, round(len(targets) * options.test_size))
    X_train, y_train = features[:-n_test], targets[:-n_test]
    X_test, y_test = features[-n_test:], targets[-n_test:]
    config = TrainConfig(
        dataset=dataset_name,
        n_estimators=options.n_estimators,
        max_depth=options.max_depth,
        test_size=options.test_size,
        random_state=options.random_state,
        model_name=options.model,
    )
    mixed = original_rows(len(original.X), len(X_train), options.original_share)
    if mixed:
        original_split = estimator.split_dataset(original, config)
        rng = np.random.default_rng(options.random_state)
        mixed = min(mixed, len(original_split.X_train))
        pick = rng.choice(len(original_split.X_train), size=mixed, replace=False)
        X_train = np.concatenate([X_train, original_split.X_train[pick]])
        y_train = np.concatenate([y_train, original_split.y_train[pick]])
    if original.task == "classification":
        missing = sorted(set(range(len(original.classes))) - set(y_train.tolist()))
        if missing:
            names = ", ".join(original.classes[i] for i in missing)
            raise TrainingError(
                f"the training rows have no label {names}; a classifier needs every class "
                "(collect more feedback, or mix in original data with --original-share)"
            )
    provenance = {
        "data_source": "production",
        "prediction_store": redact(store.uri),
        "data_from": _iso(found[0].ts),
        "data_to": _iso(found[-1].ts),
        "labelled_rows": str(len(targets)),
        "recorded_predictions": str(recorded),
        "label_coverage": f"{len(found) / recorded:.4f}" if recorded else "0",
        "skipped_rows": str(skipped),
        "versions_seen": ",".join(sorted({r.model_version for r in found}, key=_version_key)),
        "original_rows": str(mixed),
        "original_share": f"{options.original_share:g}",
        "heldout_rows": str(n_test),
        "heldout_rule": "the most recent rows by prediction time",
    }
    print(
        f"production data: {len(targets)} labelled predictions from {provenance['data_from']} "
        f"to {provenance['data_to']} (label coverage {provenance['label_coverage']}), "
        f"{mixed} original rows mixed in"
    )
    dataset = Dataset(
        original.name,
        original.task,
        original.features,
        original.classes,
        np.concatenate([X_train, X_test]),
        np.concatenate([y_train, y_test]),
    )
    split = estimator.Split(X_train, X_test, y_train, y_test)
    registered = fit_and_register(dataset, split, config, options.model, uri, provenance=provenance)
    # Held-out metrics on production data and on the original split do not compare: the live
    # evidence decides promotion to production (make judge); the server's loader still checks it.
    return lifecycle.promote(
        open_registry(uri), options.model, registered.version, options.alias, check_metrics=False
    ).message


def registry_client() -> "MlflowClient":
    from mlflow.tracking import MlflowClient

    return MlflowClient()


def registered_model(client: "MlflowClient", name: str) -> "RegisteredModel":
    """The registered model, or a one-line error naming it."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
    raise TrainingError(f"no registered model {name!r}; run make train first")


def _version_key(version: str) -> int:
    return int(version) if version.isdigit() else -1


def _decode(rows: "list[LabelledRow]", original: "Dataset") -> tuple[np.ndarray, np.ndarray, int]:
    """Features as float32 rows and targets (class indices or values); rows that do not fit."""
    width = len(original.features)
    index = {name: i for i, name in enumerate(original.classes)}
    features: list[np.ndarray] = []
    targets: list[float] = []
    skipped = 0
    for row in rows:
        values = np.frombuffer(row.features, dtype=np.float64)
        if len(values) != width:
            skipped += 1
            continue
        if original.task == "classification":
            if row.label not in index:
                skipped += 1
                continue
            targets.append(index[row.label])
        else:
            if row.value is None:
                skipped += 1
                continue
            targets.append(row.value)
        features.append(values)
    dtype = np.int64 if original.task == "classification" else np.float64
    X = np.asarray(features, dtype=np.float32).reshape(-1, width)
    return X, np.asarray(targets, dtype=dtype), skipped


def build_parser() -> argparse.ArgumentParser:
    from server.settings import default_prediction_store

    d = RetrainOptions()
    parser = argparse.ArgumentParser(
        prog="make retrain ARGS=... / python -m training.retrain",
        description=(
            "Train a new version on labelled production predictions (PREDICTION_STORE_URI), with "
            "make train's pipeline and parity check, register it in MLflow and point the alias "
            "challenger at it."
        ),
    )
    parser.add_argument("--model", default=d.model, help=f"registered model (default {d.model})")
    parser.add_argument(
        "--store-uri",
        default=None,
        help=f"prediction store (default: $PREDICTION_STORE_URI, else {default_prediction_store()})",
    )
    parser.add_argument("--min-labels", type=int, default=d.min_labels)
    parser.add_argument("--max-rows", type=int, default=d.max_rows)
    parser.add_argument("--since-hours", type=float, default=d.since_hours)
    parser.add_argument(
        "--original-share",
        type=float,
        default=d.original_share,
        help="share of the training rows taken from the original dataset (default 0)",
    )
    parser.add_argument("--test-size", type=float, default=d.test_size)
    parser.add_argument("--n-estimators", type=int, default=d.n_estimators)
    parser.add_argument("--max-depth", type=int, default=d.max_depth)
    parser.add_argument("--random-state", type=int, default=d.random_state)
    parser.add_argument("--alias", default=d.alias, help="alias for the new version")
    return parser


def parse_options(argv: list[str] | None = None) -> RetrainOptions:
    import os

    from server.settings import default_prediction_store

    args = build_parser().parse_args(argv)
    store = args.store_uri or os.environ.get("PREDICTION_STORE_URI") or default_prediction_store()
    return RetrainOptions(
        model=args.model,
        store_uri=store,
        min_labels=args.min_labels,
        max_rows=args.max_rows,
        since_hours=args.since_hours,
        original_share=args.original_share,
        test_size=args.test_size,
        n_estimators=args.n_estimators,
        max_depth=args.max_depth,
        random_state=args.random_state,
        alias=args.alias,
    )


def main(argv: list[str] | None = None) -> int:
    try:
        print(run(parse_options(argv)))
    except TrainingError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # an MLflow or storage failure: one line, not a traceback
        from mlflow.exceptions import MlflowException

        if isinstance(exc, MlflowException | OSError):
            print(f"error: MLflow: {one_line(exc)}", file=sys.stderr)
            return 1
        raise
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
