"""The datasets that ship inside scikit-learn; nothing is downloaded."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from training.errors import TrainingError

Task = Literal["classification", "regression"]


@dataclass(frozen=True)
class Dataset:
    """Features as float32 rows, targets, and the names a server needs to explain them."""

    name: str
    task: Task
    features: list[str]
    classes: list[str]
    X: np.ndarray
    y: np.ndarray

    @property
    def default_model_name(self) -> str:
        return default_model_name(self.name)


# Loader names in sklearn.datasets, imported only when a dataset is loaded: importing scikit-learn
# takes seconds, and a mistyped option should be refused before that.
_LOADERS: dict[str, tuple[str, Task]] = {
    "iris": ("load_iris", "classification"),
    "wine": ("load_wine", "classification"),
    "diabetes": ("load_diabetes", "regression"),
}

DATASET_NAMES = tuple(_LOADERS)


def default_model_name(dataset: str) -> str:
    """The registered model a dataset trains by default: <dataset>-classifier or -regressor."""
    suffix = "classifier" if _LOADERS[dataset][1] == "classification" else "regressor"
    return f"{dataset}-{suffix}"


def load_dataset(name: str) -> Dataset:
    """Load one of the bundled datasets by name."""
    if name not in _LOADERS:
        raise TrainingError(f"unknown dataset {name!r}: choose one of {', '.join(DATASET_NAMES)}")
    from sklearn import datasets as sk_datasets

    loader_name, task = _LOADERS[name]
    loader: Callable[[], Any] = getattr(sk_datasets, loader_name)
    bunch = loader()
    classes = [str(c) for c in bunch.target_names] if task == "classification" else []
    y = bunch.target.astype(np.int64 if task == "classification" else np.float64)
    return Dataset(
        name=name,
        task=task,
        features=[str(f) for f in bunch.feature_names],
        classes=classes,
        X=np.asarray(bunch.data, dtype=np.float32),
        y=y,
    )
