import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

from training import estimator
from training.config import TrainConfig
from training.datasets import load_dataset


def _train(dataset_name: str, **options: object) -> tuple[estimator.Estimator, dict[str, float]]:
    dataset = load_dataset(dataset_name)
    config = TrainConfig(dataset=dataset_name, n_estimators=10, **options)  # type: ignore[arg-type]
    split = estimator.split_dataset(dataset, config)
    model = estimator.fit(dataset, split, config)
    return model, estimator.evaluate(model, dataset, split)


def test_split_is_stratified_and_sized() -> None:
    dataset = load_dataset("iris")
    split = estimator.split_dataset(dataset, TrainConfig(test_size=0.2))
    assert (len(split.X_train), len(split.X_test)) == (120, 30)
    assert np.bincount(split.y_test).tolist() == [10, 10, 10]
    assert len(split.y_train) == 120


def test_split_depends_on_the_seed() -> None:
    dataset = load_dataset("iris")
    a = estimator.split_dataset(dataset, TrainConfig(random_state=1))
    b = estimator.split_dataset(dataset, TrainConfig(random_state=1))
    c = estimator.split_dataset(dataset, TrainConfig(random_state=2))
    assert np.array_equal(a.X_test, b.X_test)
    assert not np.array_equal(a.X_test, c.X_test)


def test_classifier_metrics() -> None:
    model, metrics = _train("iris")
    assert isinstance(model, RandomForestClassifier)
    assert model.n_estimators == 10
    assert set(metrics) == {"accuracy", "f1_macro", "log_loss"}
    assert metrics["accuracy"] >= 0.85
    assert 0.0 < metrics["log_loss"] < 5.0  # a 10-tree forest is sometimes sure and wrong


def test_regressor_metrics() -> None:
    model, metrics = _train("diabetes")
    assert isinstance(model, RandomForestRegressor)
    assert set(metrics) == {"rmse", "mae", "r2"}
    assert 0.2 < metrics["r2"] < 1.0
    assert 0 < metrics["mae"] < metrics["rmse"] < 100


@pytest.mark.parametrize("dataset_name", ["wine", "diabetes"])
def test_same_seed_gives_the_same_metrics(dataset_name: str) -> None:
    assert _train(dataset_name, random_state=7)[1] == _train(dataset_name, random_state=7)[1]


def test_another_seed_gives_other_metrics() -> None:
    assert _train("diabetes", random_state=7)[1] != _train("diabetes", random_state=8)[1]


def test_max_depth_reaches_the_forest() -> None:
    model, _ = _train("wine", max_depth=2)
    assert max(tree.get_depth() for tree in model.estimators_) <= 2
