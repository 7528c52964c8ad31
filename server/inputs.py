"""Turning request bodies into float32 batches, with a clear error for every way they can be wrong.

Status codes follow the original API: a missing or unknown feature is 400 and names it; a body of
the wrong shape or with non-numeric, null, NaN or infinite values is 422; malformed JSON is 400;
too many rows is 413. The Open Inference Protocol answers its errors with 400, as it specifies.
"""

import json
from typing import Any

import numpy as np
import orjson

from server.errors import InvalidInput, MalformedRequest, PayloadTooLarge
from server.model import Model

_NUMBER_TYPES = (float, int)


def parse_json(body: bytes) -> Any:
    if not body:
        raise MalformedRequest("the request body is empty; send a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        error = exc
    # orjson refuses NaN, Infinity and numbers that overflow a double. Python's parser accepts
    # them, so such a body is well-formed enough to get the 422 that names the bad value.
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise MalformedRequest(f"malformed JSON: {error}") from None


def _row(features: Any, model: Model, where: str) -> list[Any]:
    """The row's values in the model's feature order, each checked to be a finite number.

    One pass over the values does the common case; only a bad value pays for finding out which
    one it was and why.
    """
    if not isinstance(features, dict):
        raise InvalidInput(f"{where} must be an object mapping feature names to numbers")
    try:
        row = [features[name] for name in model.features]
    except KeyError as exc:
        raise MalformedRequest(f"{where} is missing feature {exc.args[0]!r}") from None
    if len(features) != len(row):
        unknown = next(name for name in features if name not in model.features)
        raise MalformedRequest(f"{where} has unknown feature {str(unknown)[:200]!r}")
    limit = model.input_limit
    for value in row:
        kind = type(value)
        if (kind is not float and kind is not int) or not -limit <= value <= limit:
            _explain(row, model, where)
    return row


def _explain(row: list[Any], model: Model, where: str) -> None:
    for name, value in zip(model.features, row, strict=True):
        if type(value) not in _NUMBER_TYPES:  # bool is excluded: type(True) is bool, not int
            raise InvalidInput(f"{where}: feature {name!r} must be a number, got {_kind(value)}")
        if not -model.input_limit <= value <= model.input_limit:  # NaN fails every comparison
            raise InvalidInput(
                f"{where}: feature {name!r} must be a finite number within "
                f"±{model.input_limit:.3g}; "
                "NaN, infinities and out-of-range values are rejected"
            )


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__.replace("str", "string")


def simple_batch(payload: Any, model: Model, max_batch: int) -> tuple[np.ndarray, bool]:
    """Rows from `{"features": {...}}` or `{"instances": [{...}, ...]}`; True when single."""
    if not isinstance(payload, dict):
        raise InvalidInput('expected a JSON object with "features" or "instances"')
    if "features" in payload:
        if len(payload) != 1:
            raise InvalidInput('send either "features" or "instances", and nothing else')
        return np.array([_row(payload["features"], model, "features")], model.input_dtype), True
    if "instances" in payload and len(payload) == 1:
        instances = payload["instances"]
        if not isinstance(instances, list) or not instances:
            raise InvalidInput('"instances" must be a non-empty list of feature objects')
        if len(instances) > max_batch:
            raise PayloadTooLarge(f"{len(instances)} instances exceed the limit of {max_batch}")
        rows = [_row(item, model, f"instances[{i}]") for i, item in enumerate(instances)]
        return np.array(rows, model.input_dtype), False
    raise InvalidInput('expected a JSON object with "features" or "instances"')


OIP_DATATYPES = {"FP32", "FP64"}


def oip_batch(payload: Any, model: Model, max_batch: int) -> np.ndarray:
    """The input tensor of an Open Inference Protocol request as a [N, n_features] batch."""
    if not isinstance(payload, dict):
        raise MalformedRequest("the inference request must be a JSON object")
    if "id" in payload and not isinstance(payload["id"], str):
        raise MalformedRequest('"id" must be a string')
    if "parameters" in payload and not isinstance(payload["parameters"], dict):
        raise MalformedRequest('"parameters" must be an object')
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise MalformedRequest(f'"inputs" must hold exactly one tensor, {model.input_name!r}')
    tensor = inputs[0]
    if tensor.get("name") != model.input_name:
        raise MalformedRequest(
            f"unknown input {str(tensor.get('name'))[:200]!r}; this model's input is "
            f"{model.input_name!r}"
        )
    datatype = tensor.get("datatype")
    if not isinstance(datatype, str) or datatype not in OIP_DATATYPES:
        raise MalformedRequest(f"datatype must be FP32 or FP64, got {str(datatype)[:50]!r}")
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or not all(type(d) is int for d in shape)
        or shape[0] < 1
        or shape[1] != model.n_features
    ):
        raise MalformedRequest(f"shape must be [N, {model.n_features}] with N >= 1, got {shape!r}")
    if shape[0] > max_batch:
        raise PayloadTooLarge(f"{shape[0]} rows exceed the limit of {max_batch}")
    data = tensor.get("data")
    if not isinstance(data, list):
        raise MalformedRequest('"data" must be a list of numbers, flat or nested')
    try:
        values = np.asarray(data)
    except (ValueError, OverflowError):
        raise MalformedRequest('"data" must be a flat or evenly nested list of numbers') from None
    if values.dtype.kind not in "fi" or values.size != shape[0] * shape[1]:
        raise MalformedRequest(
            f'"data" must hold {shape[0] * shape[1]} numbers for shape {shape}, '
            f"got {values.size} {'numbers' if values.dtype.kind in 'fi' else 'non-numbers'}"
        )
    with np.errstate(over="ignore"):
        batch: np.ndarray = values.reshape(shape[0], shape[1]).astype(model.input_dtype)
    if not np.isfinite(batch).all():
        raise MalformedRequest("tensor values must be finite numbers within the FP32 range")
    return batch


def requested_outputs(payload: dict[str, Any], model: Model) -> list[str]:
    """The output tensors asked for (all of them by default)."""
    if "outputs" not in payload:
        return model.output_names
    wanted = payload["outputs"]
    if not isinstance(wanted, list) or not all(isinstance(o, dict) for o in wanted):
        raise MalformedRequest('"outputs" must be a list of {"name": ...} objects')
    names = [o.get("name") for o in wanted]
    for name in names:
        if name not in model.output_names:
            raise MalformedRequest(
                f"unknown output {str(name)[:200]!r}; this model has {model.output_names}"
            )
    return [str(n) for n in names]
