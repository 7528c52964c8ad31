"""Turning request bodies into float32 batches, with a clear error for every way they can be wrong.

Status codes follow the original API: a missing or unknown feature is 400 and names it; a body of
the wrong shape or with non-numeric, null, NaN or infinite values is 422; malformed JSON is 400;
too many rows is 413. The Open Inference Protocol answers its errors with 400, as it specifies.
"""

import re
from typing import Any

import numpy as np
import orjson

from server.errors import InvalidInput, MalformedRequest, PayloadTooLarge
from server.model import Model
from server.tensors import NON_FINITE

_NUMBER_TYPES = (float, int)


def parse_json(body: bytes, non_finite_ok: bool = True) -> Any:
    """The JSON value of a body, parsed by orjson only.

    orjson refuses NaN, Infinity and numbers that overflow a double, which JSON does not have
    either. The simple API answers those with a 422 naming the feature: with `non_finite_ok`
    the first few such tokens are replaced by the string `NON_FINITE`, which the row checks
    report as a non-finite number, and the body is parsed again (a few orjson passes cost less
    than one pass of Python's json module, which took 25 ms for 1 MiB); more than that are
    refused at once. Without it (the Open Inference Protocol) the first one is a 400. Strings
    come only from orjson, so they are valid UTF-8: no lone surrogates.
    """
    if not body:
        raise MalformedRequest("the request body is empty; send a JSON object")
    if body.startswith(_BOM):
        body = body[len(_BOM) :]
    replaced = 0
    while True:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            token = _non_finite_token(body, exc)
            if token is None:
                raise MalformedRequest(f"malformed JSON: {exc}") from None
        if not non_finite_ok:
            shown = body[token[0] : token[1]][:20].decode("ascii", "replace")
            raise MalformedRequest(
                f"{shown!r} at byte {token[0]} is not a finite number; NaN, infinities and "
                "numbers beyond the double range are not accepted"
            )
        if replaced == _MAX_REPLACED:
            raise InvalidInput(
                "the body holds more than a few NaN, infinite or out-of-range numbers; "
                "every value must be a finite number"
            )
        start, end = token
        body = body[:start] + _NON_FINITE_JSON + body[end:]
        replaced += 1


_BOM = b"\xef\xbb\xbf"
# A string no number check accepts, and that _explain reports as a non-finite number.
_NON_FINITE_JSON = b'"\\u0000non-finite"'
_MAX_REPLACED = 3
_NUMBER = re.compile(rb"-?[0-9][0-9.eE+-]*")


def _non_finite_token(body: bytes, error: orjson.JSONDecodeError) -> tuple[int, int] | None:
    """Where the NaN, infinity or double-overflowing number orjson stopped at lies, if it did."""
    at = error.pos  # in characters of the decoded text, not bytes
    if not body.isascii():
        try:
            at = len(body.decode()[:at].encode())
        except UnicodeDecodeError:
            return None
    if error.msg == "number is infinity when parsed as double":
        number = _NUMBER.match(body, at)
        return (at, number.end()) if number else None
    if body.startswith(b"NaN", at) and body[at - 1 : at] != b"-":  # -NaN is not even Python's
        return at, at + 3
    if body.startswith(b"Infinity", at):
        # orjson stops after the sign of -Infinity ("no digit after sign").
        start = at - 1 if at and body[at - 1 : at] == b"-" else at
        return start, at + 8
    return None


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
        if isinstance(value, str) and value == NON_FINITE:  # NaN or an infinity in the text
            value = float("nan")
        elif type(value) not in _NUMBER_TYPES:  # bool is excluded: type(True) is bool, not int
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
