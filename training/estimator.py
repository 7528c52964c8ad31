"""Fitting and evaluating the scikit-learn model."""

from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
)
from sklearn.model_selection import train_test_split

from training.config import TrainConfig
from training.datasets import Dataset

Estimator: TypeAlias = RandomForestClassifier | RandomForestRegressor


@dataclass(frozen=True)
class Split:
    X_train: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray


def split_dataset(dataset: Dataset, config: TrainConfig) -> Split:
    stratify = dataset.y if dataset.task == "classification" else None
    X_train, X_test, y_train, y_test = train_test_split(
        dataset.X,
        dataset.y,
        test_size=config.test_size,
        random_state=config.random_state,
        stratify=stratify,
    )
    return Split(X_train, X_test, y_train, y_test)


def fit(dataset: Dataset, split: Split, config: TrainConfig) -> Estimator:
    cls = RandomForestClassifier if dataset.task == "classification" else RandomForestRegressor
    model: Estimator = cls(
        n_estimators=config.n_estimators,
        max_depth=config.max_depth,
        random_state=config.random_state,
        n_jobs=1,
    )
    model.fit(split.X_train, split.y_train)
    return model


def evaluate(model: Estimator, dataset: Dataset, split: Split) -> dict[str, float]:
    """Held-out metrics: accuracy, macro F1, log loss; or RMSE, MAE, R²."""
    if isinstance(model, RandomForestClassifier):
        predicted = model.predict(split.X_test)
        probabilities = model.predict_proba(split.X_test)
        return {
            "accuracy": float(accuracy_score(split.y_test, predicted)),
            "f1_macro": float(f1_score(split.y_test, predicted, average="macro")),
            "log_loss": float(
                log_loss(split.y_test, probabilities, labels=list(range(len(dataset.classes))))
            ),
        }
    predicted = model.predict(split.X_test)
    return {
        "rmse": float(np.sqrt(mean_squared_error(split.y_test, predicted))),
        "mae": float(mean_absolute_error(split.y_test, predicted)),
        "r2": float(r2_score(split.y_test, predicted)),
    }
