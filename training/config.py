"""Training options: parsed from the command line, checked once, with the defaults in one place."""

import argparse
from dataclasses import dataclass

from training.datasets import DATASET_NAMES
from training.errors import TrainingError


@dataclass(frozen=True)
class TrainConfig:
    dataset: str = "iris"
    n_estimators: int = 100
    max_depth: int | None = 5
    test_size: float = 0.2
    random_state: int = 42
    model_name: str | None = None

    def validate(self) -> None:
        """Reject impossible hyperparameters before any work is done."""
        if self.dataset not in DATASET_NAMES:
            raise TrainingError(
                f"unknown dataset {self.dataset!r}: choose one of {', '.join(DATASET_NAMES)}"
            )
        if self.n_estimators < 1:
            raise TrainingError(f"--n-estimators must be at least 1, got {self.n_estimators}")
        if self.max_depth is not None and self.max_depth < 1:
            raise TrainingError(f"--max-depth must be at least 1, got {self.max_depth}")
        if not 0.0 < self.test_size < 1.0:
            raise TrainingError(f"--test-size must be between 0 and 1, got {self.test_size}")
        if self.model_name is not None and not self.model_name.strip():
            raise TrainingError("--model-name must not be empty")


def build_parser() -> argparse.ArgumentParser:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(
        prog="make train ARGS=... / python -m training",
        description=(
            "Train a RandomForest on a dataset bundled with scikit-learn, export it to ONNX, "
            "check that ONNX and scikit-learn agree on every held-out row, and register it in "
            "MLflow (MLFLOW_TRACKING_URI, or the local store in .mlflow/)."
        ),
    )
    parser.add_argument("--dataset", default=defaults.dataset, help=f"one of {DATASET_NAMES}")
    parser.add_argument("--n-estimators", type=int, default=defaults.n_estimators)
    parser.add_argument(
        "--max-depth", type=int, default=defaults.max_depth, help="0 or less is rejected"
    )
    parser.add_argument("--test-size", type=float, default=defaults.test_size)
    parser.add_argument("--random-state", type=int, default=defaults.random_state)
    parser.add_argument(
        "--model-name",
        default=None,
        help="registered model name (default: <dataset>-classifier or diabetes-regressor)",
    )
    return parser


def parse_config(argv: list[str] | None = None) -> TrainConfig:
    args = build_parser().parse_args(argv)
    return TrainConfig(
        dataset=args.dataset,
        n_estimators=args.n_estimators,
        max_depth=args.max_depth,
        test_size=args.test_size,
        random_state=args.random_state,
        model_name=args.model_name,
    )
