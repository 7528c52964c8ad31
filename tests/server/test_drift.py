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


def limited_monitor(reference: dict[str, object], **limits: object) -> DriftMonitor:
    features = list(load_dataset("iris").features)
    monitor = DriftMonitor.for_model(reference, features, 1000, "1", **limits)
    assert monitor is not None
    return monitor


def test_too_few_rows_are_insufficient_data_not_drift(iris_reference) -> None:
    """One in-distribution request gave PSI 6-8 on every feature; 30 rows up to 0.47."""
    reference, X, y = iris_reference
    monitor = limited_monitor(reference, min_rows=300)
    rng = np.random.default_rng(4)
    for rows in (1, 30, 299):
        picks = rng.integers(0, len(X), rows)
        monitor = limited_monitor(reference, min_rows=300)
        monitor.record(X[picks], y[picks].astype(np.float64))
        report = monitor.report()
        assert report["status"] == "insufficient data"
        assert report["rows_in_window"] == rows
        assert report["min_rows"] == 300
        assert all(f["psi"] is None for f in report["features"].values())
        assert report["prediction"]["psi"] is None
    monitor.record(X[rng.integers(0, len(X), 1)], y[:1].astype(np.float64))
    assert monitor.report()["status"] == "ok"


def test_one_large_request_adds_only_a_few_evenly_spaced_rows(iris_reference) -> None:
    """A single 1000-row request moved every feature's PSI from ~0.03 to 6-8."""
    reference, X, y = iris_reference
    monitor = limited_monitor(reference, rows_per_request=10)
    rng = np.random.default_rng(5)
    for _ in range(300):  # ordinary traffic: a few rows at a time
        picks = rng.integers(0, len(X), 3)
        monitor.record(X[picks], y[picks].astype(np.float64))
    before = monitor.report()
    assert before["status"] == "ok"
    hostile = np.full((1000, 4), 100.0)
    monitor.record(hostile, np.zeros(1000))
    after = monitor.report()
    assert after["rows_in_window"] == 910
    worst = max(f["psi"] for f in after["features"].values())
    assert worst < 0.1, after["features"]
    sorted_rows = np.repeat(np.arange(1000.0)[:, None], 4, axis=1)
    spread = limited_monitor(reference, rows_per_request=10)
    spread.record(sorted_rows, np.zeros(1000))
    kept = spread._rows[: spread._count, 0]
    assert kept.tolist() == [0, 100, 200, 300, 400, 500, 600, 700, 800, 900]


def test_thresholds_come_from_the_caller(iris_reference) -> None:
    reference, X, y = iris_reference
    rng = np.random.default_rng(6)
    rows = X[rng.integers(0, len(X), 1000)].copy()
    rows[:, 2] += 0.5 * X[:, 2].std()
    strict = limited_monitor(reference, warning_psi=0.01, threshold_psi=0.02)
    strict.record(rows, y[rng.integers(0, len(y), 1000)].astype(np.float64))
    report = strict.report()
    assert report["thresholds"] == {"warning": 0.01, "drift": 0.02}
    psi_value = report["features"]["petal length (cm)"]["psi"]
    assert psi_value >= 0.02
    assert report["features"]["petal length (cm)"]["status"] == "drift"
    lax = limited_monitor(reference, warning_psi=psi_value + 1, threshold_psi=psi_value + 2)
    lax.record(rows, y[rng.integers(0, len(y), 1000)].astype(np.float64))
    assert lax.report()["features"]["petal length (cm)"]["status"] == "ok"
