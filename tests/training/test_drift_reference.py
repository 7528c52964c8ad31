import json

import numpy as np
import pytest

from training import drift_reference, estimator
from training.config import TrainConfig
from training.datasets import load_dataset


def test_edges_of_a_uniform_feature_are_deciles() -> None:
    edges = drift_reference.bin_edges(np.arange(1, 1001, dtype=np.float32))
    assert len(edges) == drift_reference.N_BINS - 1
    assert edges == pytest.approx([1 + 99.9 * k for k in range(1, 10)])


def test_repeated_edges_of_a_discrete_feature_are_merged() -> None:
    assert drift_reference.bin_edges(np.full(10, 3.0, dtype=np.float32)) == [3.0]
    edges = drift_reference.bin_edges(np.repeat([0.0, 1.0, 2.0], [50, 30, 20]))
    assert edges == pytest.approx([0.0, 0.5, 1.0, 1.2, 2.0])


def test_bins_are_right_closed_on_the_edges() -> None:
    # A value equal to an edge goes to the bin above it, as numpy.searchsorted(side="right").
    assert drift_reference.proportions(np.array([0.0, 1.0, 1.5, 2.0, 3.0]), [1.0, 2.0]) == [
        0.2,
        0.4,
        0.4,
    ]


def test_proportions_of_nothing() -> None:
    assert drift_reference.proportions(np.array([]), [1.0]) == [0.0, 0.0]


def test_classifier_reference() -> None:
    dataset = load_dataset("iris")
    split = estimator.split_dataset(dataset, TrainConfig())
    reference = drift_reference.build_reference(dataset, split.X_train, split.y_train)
    assert json.loads(json.dumps(reference)) == reference
    assert reference["schema_version"] == 1
    assert reference["bins"] == 10
    assert reference["rows"] == 120
    assert list(reference["features"]) == dataset.features
    for feature in reference["features"].values():
        assert len(feature["proportions"]) == len(feature["edges"]) + 1
        assert sum(feature["proportions"]) == pytest.approx(1.0)
        assert 1 <= len(feature["edges"]) <= 9
    assert reference["prediction"] == {
        "type": "categorical",
        "classes": ["setosa", "versicolor", "virginica"],
        "proportions": pytest.approx([1 / 3] * 3),
    }


def test_regressor_reference() -> None:
    dataset = load_dataset("diabetes")
    split = estimator.split_dataset(dataset, TrainConfig(dataset="diabetes"))
    reference = drift_reference.build_reference(dataset, split.X_train, split.y_train)
    prediction = reference["prediction"]
    assert prediction["type"] == "numeric"
    assert len(prediction["edges"]) == 9
    assert sum(prediction["proportions"]) == pytest.approx(1.0)
    assert all(p == pytest.approx(0.1, abs=0.02) for p in prediction["proportions"])
    assert len(reference["features"]) == 10
