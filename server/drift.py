"""Drift detection: live traffic against the training distribution, by Population Stability Index.

Recording and reporting both run on the event loop's thread, so the ring needs no lock.

The request path only copies rows into a fixed ring buffer (constant cost whatever the window);
the PSI is computed periodically, off the request path, over the last DRIFT_WINDOW rows.
Bins match training's drift reference exactly: `searchsorted(edges, x, side="right")`.

Two limits keep the figure honest. Below DRIFT_MIN_ROWS rows the report says "insufficient
data" and gives no PSI: sampling noise alone puts a 30-row window's PSI near 1. And one call
adds at most DRIFT_ROWS_PER_REQUEST rows, evenly spaced, so one large batch can neither fake
drift nor hide it.
"""

from typing import Any

import numpy as np

WARNING_PSI = 0.1
DRIFT_PSI = 0.25
_EPSILON = 1e-4  # keeps empty bins from making the logarithm infinite


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population Stability Index of two distributions over the same bins."""
    e = np.clip(np.asarray(expected, dtype=np.float64), _EPSILON, None)
    a = np.clip(np.asarray(actual, dtype=np.float64), _EPSILON, None)
    return float(np.sum((a - e) * np.log(a / e)))


def shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    return counts / max(len(values), 1)


INSUFFICIENT = "insufficient data"


class DriftMonitor:
    """A ring buffer of recent rows and predictions, and the PSI report computed from it."""

    def __init__(
        self,
        reference: dict[str, Any],
        features: list[str],
        window: int,
        version: str,
        *,
        min_rows: int = 1,
        rows_per_request: int | None = None,
        warning_psi: float = WARNING_PSI,
        threshold_psi: float = DRIFT_PSI,
    ) -> None:
        self.version = version
        self.features = features
        self.window = window
        self.min_rows = min_rows
        self.rows_per_request = rows_per_request or window
        self.warning_psi = warning_psi
        self.threshold_psi = threshold_psi
        self._rows = np.zeros((window, len(features)), dtype=np.float64)
        self._predictions = np.zeros(window, dtype=np.float64)
        self._next = 0
        self._count = 0
        feature_refs = reference.get("features", {})
        self._edges = [np.asarray(feature_refs[f]["edges"], dtype=np.float64) for f in features]
        self._expected = [np.asarray(feature_refs[f]["proportions"]) for f in features]
        prediction = reference.get("prediction", {})
        self._categorical = prediction.get("type") == "categorical"
        self._prediction_expected = np.asarray(prediction.get("proportions", []), dtype=np.float64)
        self._prediction_edges = np.asarray(prediction.get("edges", []), dtype=np.float64)

    @classmethod
    def for_model(cls, reference: dict[str, Any] | None, features: list[str], window: int,
                  version: str, **limits: Any) -> "DriftMonitor | None":  # fmt: skip
        """A monitor, or None when the model carries no usable reference."""
        if not reference:
            return None
        refs = reference.get("features", {})
        if not all(f in refs and "edges" in refs[f] and "proportions" in refs[f] for f in features):
            return None
        return cls(reference, features, window, version, **limits)

    def status_of(self, value: float) -> str:
        if value >= self.threshold_psi:
            return "drift"
        return "warning" if value >= self.warning_psi else "ok"

    def record(self, rows: np.ndarray, predictions: np.ndarray) -> None:
        """Copy a scored batch into the ring (the only work on the request path)."""
        n = len(rows)
        if n > self.rows_per_request:  # evenly spaced, so a sorted batch is sampled throughout
            kept = np.arange(self.rows_per_request) * n // self.rows_per_request
            rows, predictions, n = rows[kept], predictions[kept], self.rows_per_request
        if n >= self.window:
            rows, predictions, n = rows[-self.window :], predictions[-self.window :], self.window
        start = self._next
        end = start + n
        if end <= self.window:
            self._rows[start:end] = rows
            self._predictions[start:end] = predictions
        else:
            first = self.window - start
            self._rows[start:] = rows[:first]
            self._rows[: n - first] = rows[first:]
            self._predictions[start:] = predictions[:first]
            self._predictions[: n - first] = predictions[first:]
        self._next = end % self.window
        self._count = min(self._count + n, self.window)

    def report(self) -> dict[str, Any]:
        """Per-feature and prediction PSI over the current window, once it has enough rows."""
        count = self._count
        report: dict[str, Any] = {
            "status": "no data",
            "window_size": self.window,
            "rows_in_window": count,
            "min_rows": self.min_rows,
            "reference_version": self.version,
            "thresholds": {"warning": self.warning_psi, "drift": self.threshold_psi},
        }
        if count < self.min_rows:
            # No figure at all: a PSI from a handful of rows is noise, and an exported one pages.
            unknown = {"psi": None, "status": INSUFFICIENT if count else "no data"}
            report["status"] = unknown["status"]
            report["features"] = {name: dict(unknown) for name in self.features}
            report["prediction"] = dict(unknown)
            return report
        rows = self._rows[:count].copy()
        predictions = self._predictions[:count].copy()
        features: dict[str, dict[str, Any]] = {}
        prediction: dict[str, Any] = {"psi": None, "status": "no data"}
        for i, name in enumerate(self.features):
            value = psi(self._expected[i], shares(rows[:, i], self._edges[i]))
            features[name] = {"psi": round(value, 6), "status": self.status_of(value)}
        if self._prediction_expected.size:
            if self._categorical:
                counts = np.bincount(
                    predictions.astype(np.int64), minlength=len(self._prediction_expected)
                )[: len(self._prediction_expected)]
                actual = counts / count
            else:
                actual = shares(predictions, self._prediction_edges)
            value = psi(self._prediction_expected, actual)
            prediction = {"psi": round(value, 6), "status": self.status_of(value)}
        statuses = [f["status"] for f in features.values()] + [prediction["status"]]
        report["status"] = (
            "drift" if "drift" in statuses else "warning" if "warning" in statuses else "ok"
        )
        report["features"] = features
        report["prediction"] = prediction
        return report
