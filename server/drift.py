"""Drift detection: live traffic against the training distribution, by Population Stability Index.

Recording and reporting both run on the event loop's thread, so the ring needs no lock.

The request path only copies rows into a fixed ring buffer (constant cost whatever the window);
the PSI is computed periodically, off the request path, over the last DRIFT_WINDOW rows.
Bins match training's drift reference exactly: `searchsorted(edges, x, side="right")`.
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


def status_of(value: float) -> str:
    if value >= DRIFT_PSI:
        return "drift"
    return "warning" if value >= WARNING_PSI else "ok"


class DriftMonitor:
    """A ring buffer of recent rows and predictions, and the PSI report computed from it."""

    def __init__(self, reference: dict[str, Any], features: list[str], window: int, version: str):
        self.version = version
        self.features = features
        self.window = window
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
                  version: str) -> "DriftMonitor | None":  # fmt: skip
        """A monitor, or None when the model carries no usable reference."""
        if not reference:
            return None
        refs = reference.get("features", {})
        if not all(f in refs and "edges" in refs[f] and "proportions" in refs[f] for f in features):
            return None
        return cls(reference, features, window, version)

    def record(self, rows: np.ndarray, predictions: np.ndarray) -> None:
        """Copy a scored batch into the ring (the only work on the request path)."""
        n = len(rows)
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
        """Per-feature and prediction PSI over the current window."""
        count = self._count
        rows = self._rows[:count].copy()
        predictions = self._predictions[:count].copy()
        features: dict[str, dict[str, Any]] = {}
        prediction: dict[str, Any] = {"psi": None, "status": "no data"}
        if count:
            for i, name in enumerate(self.features):
                value = psi(self._expected[i], shares(rows[:, i], self._edges[i]))
                features[name] = {"psi": round(value, 6), "status": status_of(value)}
            if self._prediction_expected.size:
                if self._categorical:
                    counts = np.bincount(
                        predictions.astype(np.int64), minlength=len(self._prediction_expected)
                    )[: len(self._prediction_expected)]
                    actual = counts / count
                else:
                    actual = shares(predictions, self._prediction_edges)
                value = psi(self._prediction_expected, actual)
                prediction = {"psi": round(value, 6), "status": status_of(value)}
        statuses = [f["status"] for f in features.values()] + [prediction["status"]]
        overall = "drift" if "drift" in statuses else "warning" if "warning" in statuses else "ok"
        return {
            "status": overall if count else "no data",
            "window_size": self.window,
            "rows_in_window": count,
            "reference_version": self.version,
            "thresholds": {"warning": WARNING_PSI, "drift": DRIFT_PSI},
            "features": features,
            "prediction": prediction,
        }
