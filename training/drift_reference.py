"""The training distribution the server compares live traffic against (Population Stability Index).

Per feature: the inner edges of 10 quantile bins of the training split and the training share in
each bin. For the target: class shares for classifiers, or the same 10-bin histogram for
regressors. Bins are right-closed on the edges list (`numpy.searchsorted(..., side="right")`), and
the server must bin identically.
"""

from typing import Any

import numpy as np

from training.datasets import Dataset

N_BINS = 10
SCHEMA_VERSION = 1


def bin_edges(values: np.ndarray, n_bins: int = N_BINS) -> list[float]:
    """Inner quantile edges; repeated edges (from discrete features) are merged."""
    quantiles = np.quantile(values.astype(np.float64), np.linspace(0, 1, n_bins + 1)[1:-1])
    return [float(q) for q in np.unique(quantiles)]


def proportions(values: np.ndarray, edges: list[float]) -> list[float]:
    counts = np.bincount(
        np.searchsorted(np.asarray(edges), values, side="right"), minlength=len(edges) + 1
    )
    return [float(c) for c in counts / max(len(values), 1)]


def build_reference(dataset: Dataset, X_train: np.ndarray, y_train: np.ndarray) -> dict[str, Any]:
    features = {}
    for index, name in enumerate(dataset.features):
        edges = bin_edges(X_train[:, index])
        features[name] = {"edges": edges, "proportions": proportions(X_train[:, index], edges)}
    if dataset.task == "classification":
        counts = np.bincount(y_train.astype(np.int64), minlength=len(dataset.classes))
        prediction: dict[str, Any] = {
            "type": "categorical",
            "classes": dataset.classes,
            "proportions": [float(c) for c in counts / len(y_train)],
        }
    else:
        edges = bin_edges(y_train)
        prediction = {"type": "numeric", "edges": edges, "proportions": proportions(y_train, edges)}
    return {
        "schema_version": SCHEMA_VERSION,
        "bins": N_BINS,
        "rows": len(X_train),
        "features": features,
        "prediction": prediction,
    }
