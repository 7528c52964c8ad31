"""Open Inference Protocol tensors: datatypes, the input tensor as the model's batch, raw bytes.

Shared by the REST front end (JSON and the binary tensor data extension) and gRPC. An input
tensor's header (name, datatype, shape) is checked once, then its values come either from JSON
numbers or from raw little-endian bytes; either way they become an [N, n_features] batch of the
model's input type, every value finite and within that type's range. Errors are 400
(`MalformedRequest`), as the protocol specifies; more rows than MAX_BATCH is 413.
"""

from typing import Any

import numpy as np

from server.errors import MalformedRequest, PayloadTooLarge
from server.model import Model

# The datatypes an input tensor may have, as raw little-endian bytes; each is converted to the
# model's own input type. The protocol's other types (BOOL, UINT*, INT8/16, FP16, BF16, BYTES) are
# refused: no model served here takes them.
INPUT_DATATYPES: dict[str, np.dtype[Any]] = {
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
}
_ACCEPTED = ", ".join(INPUT_DATATYPES)
_NAMES: dict[type, str] = {
    np.float32: "FP32",
    np.float64: "FP64",
    np.int64: "INT64",
    np.int32: "INT32",
}
# Up to this many values, checking each in Python beats numpy's fixed costs per call.
_SMALL = 64


def datatype(dtype: type) -> str:
    """The protocol's name for a numpy scalar type."""
    return _NAMES.get(dtype, "BYTES")


def check_input(
    name: Any, dtype_name: Any, shape: Any, model: Model, max_batch: int
) -> tuple[int, np.dtype[Any]]:
    """Check an input tensor's header against the model; its rows and the numpy dtype of its data.

    `shape` must be a list (gRPC's repeated field is converted first).
    """
    if name != model.input_name:
        raise MalformedRequest(
            f"unknown input {str(name)[:200]!r}; this model's input is {model.input_name!r}"
        )
    dtype = INPUT_DATATYPES.get(dtype_name) if isinstance(dtype_name, str) else None
    if dtype is None:
        raise MalformedRequest(f"datatype must be one of {_ACCEPTED}, got {str(dtype_name)[:50]!r}")
    if (
        type(shape) is not list
        or len(shape) != 2
        or type(shape[0]) is not int
        or type(shape[1]) is not int
        or shape[0] < 1
        or shape[1] != model.n_features
    ):
        raise MalformedRequest(f"shape must be [N, {model.n_features}] with N >= 1, got {shape!r}")
    if shape[0] > max_batch:
        raise PayloadTooLarge(f"{shape[0]} rows exceed the limit of {max_batch}")
    return shape[0], dtype


def rows_from_bytes(
    raw: bytes | memoryview, dtype: np.dtype[Any], rows: int, model: Model
) -> np.ndarray:
    """The batch held in raw little-endian bytes: exactly rows * features * the type's size."""
    expected = rows * model.n_features * dtype.itemsize
    if len(raw) != expected:
        raise MalformedRequest(
            f"input {model.input_name!r} has {len(raw)} bytes of data; shape "
            f"[{rows}, {model.n_features}] of {datatype(dtype.type)} needs {expected}"
        )
    values = np.ndarray((rows, model.n_features), dtype, raw)  # a view: nothing is copied
    return _as_model_input(values, model)


# What parse_json puts in place of a NaN, an infinity or a number past the double range, so that
# the checks can name the problem (JSON has no such numbers, and orjson refuses them).
NON_FINITE = "\x00non-finite"


def rows_from_json(
    data: Any, dtype: np.dtype[Any], rows: int, model: Model, what: str = '"data"'
) -> np.ndarray:
    """The batch held in a JSON list of rows * features numbers, flat or nested (one level)."""
    width = model.n_features
    count = rows * width
    integers = dtype.kind == "i"
    if type(data) is list and count <= _SMALL:
        # Small requests: one pass in Python, and numpy only once the values are known good.
        values = data
        if rows == 1 and len(data) == 1 and type(data[0]) is list:
            values = data[0]
        if len(values) == count:
            limit = model.input_limit
            for value in values:
                kind = type(value)
                if (kind is not int and (integers or kind is not float)) or not (
                    -limit <= value <= limit
                ):
                    break
            else:
                return np.array(values, model.input_dtype).reshape(rows, width)
    if not isinstance(data, list):
        raise MalformedRequest(f"{what} must be a list of numbers, flat or nested")
    try:
        array = np.asarray(data)
    except (ValueError, OverflowError):
        raise MalformedRequest(f"{what} must be a flat or evenly nested list of numbers") from None
    kinds = "i" if integers else "fi"
    if array.dtype.kind in "UO" and (array == NON_FINITE).any():
        raise MalformedRequest(
            f"{what} must hold finite numbers; NaN, infinities and numbers beyond the double "
            "range are not accepted"
        )
    if array.dtype.kind not in kinds or array.size != count:
        numbers = "integers" if integers else "numbers"
        raise MalformedRequest(
            f"{what} must hold {count} {numbers} for shape [{rows}, {width}], got {array.size} "
            f"{numbers if array.dtype.kind in kinds else 'values, not all of them ' + numbers}"
        )
    return _as_model_input(array.reshape(rows, width), model)


def _as_model_input(values: np.ndarray, model: Model) -> np.ndarray:
    """`values` as the model's input type, refusing NaN, infinities and values past its range."""
    target = model.input_dtype
    if values.dtype.kind == "f":
        limit = model.input_limit
        if values.size <= _SMALL:  # a Python pass costs less than numpy's per-call overhead
            for value in values.ravel().tolist():
                if not -limit <= value <= limit:  # NaN fails every comparison
                    _refuse(values, model)
        elif not np.isfinite(values).all() or (
            values.dtype.itemsize > np.dtype(target).itemsize and np.abs(values).max() > limit
        ):
            _refuse(values, model)
    batch: np.ndarray = values.astype(target, copy=False)
    return batch


def _refuse(values: np.ndarray, model: Model) -> None:
    if not np.isfinite(values).all():
        raise MalformedRequest(
            "tensor values must be finite numbers; NaN and infinities are refused"
        )
    raise MalformedRequest(
        f"tensor values must be finite numbers within ±{model.input_limit:.3g}, the "
        f"range of the model's input type {datatype(model.input_dtype)}"
    )


def output_bytes(tensor: np.ndarray) -> bytes:
    """An output tensor as raw little-endian bytes, row-major (`tobytes` writes C order from any
    layout, so no contiguous copy is made first)."""
    if tensor.dtype.byteorder == ">":
        tensor = tensor.astype(tensor.dtype.newbyteorder("<"))
    return tensor.tobytes()
