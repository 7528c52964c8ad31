"""Request bodies: the same rows for every server, in each server's own format."""

from collections.abc import Sequence

import orjson

# Setosa from the iris data set; any other model gets a row of ones (finite, so always valid).
IRIS_FEATURES = (
    "sepal length (cm)",
    "sepal width (cm)",
    "petal length (cm)",
    "petal width (cm)",
)
IRIS_ROW = (5.1, 3.5, 1.4, 0.2)


def example_row(features: Sequence[str]) -> list[float]:
    return list(IRIS_ROW) if tuple(features) == IRIS_FEATURES else [1.0] * len(features)


def predict_single(features: Sequence[str], row: Sequence[float]) -> bytes:
    """Our /predict, one row: {"features": {name: value}}."""
    return orjson.dumps({"features": dict(zip(features, row, strict=True))})


def predict_batch(features: Sequence[str], row: Sequence[float], rows: int) -> bytes:
    """Our /predict, a batch: {"instances": [{name: value}, ...]} with `rows` copies of `row`."""
    instance = dict(zip(features, row, strict=True))
    return orjson.dumps({"instances": [instance] * rows})


def mlflow_dataframe(features: Sequence[str], row: Sequence[float]) -> bytes:
    """MLflow's /invocations, one row, column-based: {"dataframe_split": {...}}."""
    return orjson.dumps({"dataframe_split": {"columns": list(features), "data": [list(row)]}})


def mlflow_tensor(row: Sequence[float]) -> bytes:
    """MLflow's /invocations, one row, tensor-based: {"inputs": [[...]]}."""
    return orjson.dumps({"inputs": [list(row)]})
