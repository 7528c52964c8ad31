"""Tables as MLflow's scoring protocol and KServe V1 send them: rows, records and columns.

Each form becomes the same [N, n_features] batch of the model's input type. Rows are lists of
values in the model's feature order; records are objects keyed by feature name; columns are one
list per feature. As MLflow's schema enforcement does, fields the model does not take are ignored
and a missing one is refused by name. Values must be finite numbers within the model's input range.
"""

from typing import Any

import numpy as np

from server.errors import InvalidInput, MalformedRequest, PayloadTooLarge
from server.model import Model
from server.tensors import INPUT_DATATYPES, rows_from_json

_FP64 = INPUT_DATATYPES["FP64"]


def _count(n: int, max_batch: int) -> int:
    if n < 1:
        raise InvalidInput("the request holds no rows")
    if n > max_batch:
        raise PayloadTooLarge(f"{n} rows exceed the limit of {max_batch}")
    return n


def from_rows(rows: Any, model: Model, max_batch: int, what: str) -> np.ndarray:
    """Rows of values in the model's feature order: [[5.1, 3.5, ...], ...]."""
    if not isinstance(rows, list):
        raise InvalidInput(f"{what} must be a list of rows")
    n = _count(len(rows), max_batch)
    try:
        return rows_from_json(rows, _FP64, n, model, what)
    except MalformedRequest as exc:  # the tensor checks' 400: a schema error in these protocols
        raise InvalidInput(exc.detail) from None


def from_columns(columns: Any, rows: Any, model: Model, max_batch: int, what: str) -> np.ndarray:
    """MLflow's split form: column names, and rows of values in that column order."""
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise InvalidInput(f"{what}.columns must be a list of column names")
    if not isinstance(rows, list):
        raise InvalidInput(f"{what}.data must be a list of rows")
    if columns == model.features:
        return from_rows(rows, model, max_batch, f"{what}.data")
    position = {name: i for i, name in enumerate(columns)}
    missing = [name for name in model.features if name not in position]
    if missing:
        raise InvalidInput(f"the model is missing inputs {missing[:20]}")
    _count(len(rows), max_batch)
    picks = [position[name] for name in model.features]
    width = len(columns)
    if not all(type(row) is list for row in rows):
        raise InvalidInput(f"{what}.data must be a list of rows, each a list of values")
    ordered = [[row[i] for i in picks] for row in rows if len(row) == width]
    if len(ordered) != len(rows):
        raise InvalidInput(f"{what}.data: every row must hold {width} values, one per column")
    return from_rows(ordered, model, max_batch, f"{what}.data")


def from_records(records: Any, model: Model, max_batch: int, what: str) -> np.ndarray:
    """Records keyed by feature name: [{"sepal length (cm)": 5.1, ...}, ...]."""
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise InvalidInput(f"{what} must be a list of objects mapping feature names to values")
    _count(len(records), max_batch)
    features = model.features
    try:
        rows = [[record[name] for name in features] for record in records]
    except KeyError as exc:
        raise InvalidInput(f"the model is missing inputs [{str(exc.args[0])[:200]!r}]") from None
    return from_rows(rows, model, max_batch, what)


def from_column_lists(columns: Any, model: Model, max_batch: int, what: str) -> np.ndarray:
    """One list of values per feature: {"sepal length (cm)": [5.1, ...], ...}."""
    features = model.features
    missing = [name for name in features if name not in columns]
    if missing:
        raise InvalidInput(f"the model is missing inputs {missing[:20]}")
    lists = [columns[name] for name in features]
    if not all(isinstance(values, list) for values in lists):
        raise InvalidInput(f"{what}: each feature must map to a list of values")
    n = len(lists[0])
    if any(len(values) != n for values in lists):
        raise InvalidInput(f"{what}: every feature must have the same number of values")
    _count(n, max_batch)
    return from_rows([list(row) for row in zip(*lists, strict=True)], model, max_batch, what)


def from_instances(instances: Any, model: Model, max_batch: int, what: str) -> np.ndarray:
    """TF-serving-style instances or inputs: rows, records or one list per feature."""
    if isinstance(instances, dict):
        return from_column_lists(instances, model, max_batch, what)
    if isinstance(instances, list) and instances and isinstance(instances[0], dict):
        return from_records(instances, model, max_batch, what)
    return from_rows(instances, model, max_batch, what)
