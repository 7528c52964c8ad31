import numpy as np
import pytest

from training.datasets import DATASET_NAMES, load_dataset
from training.errors import TrainingError


@pytest.mark.parametrize(
    ("name", "task", "rows", "n_features", "classes", "model_name"),
    [
        (
            "iris",
            "classification",
            150,
            4,
            ["setosa", "versicolor", "virginica"],
            "iris-classifier",
        ),
        ("wine", "classification", 178, 13, ["class_0", "class_1", "class_2"], "wine-classifier"),
        ("diabetes", "regression", 442, 10, [], "diabetes-regressor"),
    ],
)
def test_bundled_datasets(
    name: str, task: str, rows: int, n_features: int, classes: list[str], model_name: str
) -> None:
    dataset = load_dataset(name)
    assert dataset.task == task
    assert dataset.X.shape == (rows, n_features)
    assert dataset.X.dtype == np.float32
    assert len(dataset.features) == n_features
    assert all(isinstance(f, str) for f in dataset.features)
    assert dataset.classes == classes
    assert dataset.default_model_name == model_name
    assert dataset.y.shape == (rows,)
    if task == "classification":
        assert dataset.y.dtype == np.int64
        assert set(dataset.y.tolist()) == set(range(len(classes)))
    else:
        assert dataset.y.dtype == np.float64


def test_dataset_names() -> None:
    assert DATASET_NAMES == ("iris", "wine", "diabetes")


def test_unknown_dataset() -> None:
    with pytest.raises(TrainingError, match=r"unknown dataset 'titanic'"):
        load_dataset("titanic")
