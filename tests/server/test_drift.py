import numpy as np
import pytest

from server.drift import DriftMonitor, psi, shares
from training.datasets import load_dataset
from training.drift_reference import build_reference


@pytest.fixture(scope="module")
def iris_reference() -> tuple[dict[str, object], np.ndarray, np.ndarray]:
    dataset = load_dataset("iris")
    return build_reference(dataset, dataset.X, dataset.y), dataset.X, dataset.y


def monitor_for(reference: dict[str, object], window: int = 1000) -> DriftMonitor:
    features = list(load_dataset("iris").features)
    monitor = DriftMonitor.for_model(reference, features, window, "1")
    assert monitor is not None
    return monitor


def test_psi_is_zero_for_identical_and_large_for_disjoint() -> None:
    assert psi(np.array([0.5, 0.5]), np.array([0.5, 0.5])) == pytest.approx(0.0)
    assert psi(np.array([1.0, 0.0]), np.array([0.0, 1.0])) > 1.0


def test_bins_match_training(
    iris_reference: tuple[dict[str, object], np.ndarray, np.ndarray],
) -> None:
    reference, X, _ = iris_reference
    feature = reference["features"]["sepal length (cm)"]  # type: ignore[index]
    got = shares(X[:, 0].astype(np.float64), np.asarray(feature["edges"]))
    assert got == pytest.approx(feature["proportions"])


def test_training_distribution_stays_under_warning(iris_reference) -> None:
    reference, X, y = iris_reference
    monitor = monitor_for(reference)
    rng = np.random.default_rng(0)
    picks = rng.integers(0, len(X), 1000)
    monitor.record(X[picks], y[picks].astype(np.float64))
    report = monitor.report()
    assert report["rows_in_window"] == 1000
    assert all(f["psi"] < 0.1 for f in report["features"].values()), report["features"]
    assert report["prediction"]["psi"] < 0.1
    assert report["status"] == "ok"


def test_shifted_feature_is_flagged_alone(iris_reference) -> None:
    reference, X, y = iris_reference
    monitor = monitor_for(reference)
    rng = np.random.default_rng(1)
    rows = X[rng.integers(0, len(X), 1000)].copy()
    rows[:, 2] += 2 * X[:, 2].std()  # petal length, two standard deviations
    monitor.record(rows, y[rng.integers(0, len(y), 1000)].astype(np.float64))
    features = monitor.report()["features"]
    assert features["petal length (cm)"]["psi"] > 0.25
    assert features["petal length (cm)"]["status"] == "drift"
    for name in ("sepal length (cm)", "sepal width (cm)", "petal width (cm)"):
        assert features[name]["psi"] < 0.1, (name, features[name])


def test_all_setosa_predictions_raise_prediction_drift(iris_reference) -> None:
    reference, X, _ = iris_reference
    monitor = monitor_for(reference)
    monitor.record(X[:50], np.zeros(50))
    prediction = monitor.report()["prediction"]
    assert prediction["psi"] > 0.25
    assert prediction["status"] == "drift"


def test_window_keeps_only_the_latest_rows(iris_reference) -> None:
    reference, X, y = iris_reference
    monitor = monitor_for(reference, window=100)
    monitor.record(X[:50] + 100, np.zeros(50))  # old, wildly drifted rows...
    for start in range(0, 150, 30):  # ...pushed out by 150 ordinary rows, in uneven batches
        monitor.record(X[start : start + 30], y[start : start + 30].astype(np.float64))
    report = monitor.report()
    assert report["rows_in_window"] == 100
    fresh = monitor_for(reference, window=100)
    fresh.record(X[50:150], y[50:150].astype(np.float64))
    assert report["features"] == fresh.report()["features"]
    assert report["prediction"] == fresh.report()["prediction"]


def test_no_reference_means_no_monitor() -> None:
    assert DriftMonitor.for_model(None, ["a"], 10, "1") is None
    assert DriftMonitor.for_model({"features": {}}, ["a"], 10, "1") is None
