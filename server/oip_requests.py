"""Open Inference Protocol inference requests, checked: the batch and the outputs to answer.

A request's JSON says what it holds: the input tensor's name, datatype and shape, where its
values are, and which outputs to answer how. `read_request` checks that against the model; the
values are then read from the JSON `data` or, with the binary tensor data extension, from the raw
bytes after the JSON header (`InferenceRequest.batch`), and checked on every request.

Clients of the binary extension (tritonclient's default) send the same JSON header for every
request of a shape. `HeaderCache` keeps checked headers by their bytes, for the model they were
checked against, so such a request skips the JSON parse and the header checks. It is bounded in
entries and in the size of what it keeps, and keeps nothing that names a request (`id`).
"""

import weakref
from typing import Any, NamedTuple

import numpy as np

from server.errors import MalformedRequest
from server.inputs import parse_json
from server.model import Model
from server.tensors import check_input, rows_from_bytes, rows_from_json

Outputs = tuple[tuple[str, bool], ...]  # (output name, answer as binary data), in order


class InferenceRequest(NamedTuple):
    """An inference request's JSON, checked against the model: all of it but the input's values."""

    n_rows: int
    dtype: np.dtype[Any]
    binary_size: int | None  # the input's bytes after the JSON header; None: they are in `data`
    data: Any  # the input's JSON values (None with binary data)
    outputs: Outputs
    id: str | None

    def batch(self, binary: memoryview | None, model: Model) -> np.ndarray:
        """The input's values, checked: from `data`, or from `binary` (the bytes after the JSON
        header), which must be all of the input's bytes. `model` is the one it was checked
        against."""
        if self.binary_size is None:
            if binary:
                raise MalformedRequest(
                    f"{len(binary)} bytes follow the JSON header, but no input has binary_data_size"
                )
            return rows_from_json(self.data, self.dtype, self.n_rows, model)
        if binary is None:
            raise MalformedRequest(
                "binary_data_size needs the Inference-Header-Content-Length header"
            )
        if self.binary_size != len(binary):  # one input: all the bytes after the header are its
            raise MalformedRequest(
                f"binary_data_size is {self.binary_size}, but {len(binary)} bytes follow the "
                "JSON header"
            )
        return rows_from_bytes(binary, self.dtype, self.n_rows, model)


def read_request(payload: Any, model: Model, max_batch: int) -> InferenceRequest:
    """Check a request's JSON against the model.

    The binary tensor data extension: an input carries `"parameters": {"binary_data_size": n}`
    instead of `data`, its n bytes following the JSON header in input order. An output is
    answered in binary when its own `binary_data` parameter says so, else when the request's
    `binary_data_output` does.
    """
    if not isinstance(payload, dict):
        raise MalformedRequest("the inference request must be a JSON object")
    request_id = payload.get("id")
    if "id" in payload and not isinstance(request_id, str):
        raise MalformedRequest('"id" must be a string')
    binary_output = False
    if "parameters" in payload:
        parameters = payload["parameters"]
        if not isinstance(parameters, dict):
            raise MalformedRequest('"parameters" must be an object')
        binary_output = _flag(parameters, "binary_data_output", "parameters")
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise MalformedRequest(f'"inputs" must hold exactly one tensor, {model.input_name!r}')
    tensor = inputs[0]
    n_rows, dtype = check_input(
        tensor.get("name"), tensor.get("datatype"), tensor.get("shape"), model, max_batch
    )
    size = _binary_size(tensor.get("parameters"))
    if size is not None:
        if "data" in tensor:
            raise MalformedRequest('an input with binary_data_size must not also carry "data"')
        needed = n_rows * model.n_features * dtype.itemsize
        if size != needed:
            raise MalformedRequest(
                f"binary_data_size is {size}; shape [{n_rows}, {model.n_features}] of "
                f"{tensor['datatype']} needs {needed} bytes"
            )
    if "outputs" in payload:
        outputs = _outputs(payload["outputs"], model, binary_output)
    else:
        outputs = tuple([(name, binary_output) for name in model.output_names])
    return InferenceRequest(n_rows, dtype, size, tensor.get("data"), outputs, request_id)


class HeaderCache:
    """Checked binary-request headers by their bytes, for each model being served.

    Per model, at most `entries` headers of at most `largest` bytes, the earliest kept dropped
    first. A header is kept only once it passed its checks, only when its values are binary (JSON
    values differ from request to request) and only without an `id`. Headers are kept per model
    object, so a champion and a challenger each keep theirs, a new model checks them again, and a
    model no longer served takes its headers with it (the cache holds models weakly).
    """

    def __init__(self, max_batch: int, entries: int = 64, largest: int = 1024) -> None:
        self.max_batch = max_batch
        self.entries = entries
        self.largest = largest
        self._models: weakref.WeakKeyDictionary[Model, dict[bytes, InferenceRequest]] = (
            weakref.WeakKeyDictionary()
        )

    def kept(self, model: Model) -> list[bytes]:
        """The headers kept for `model`, the earliest first."""
        return list(self._models.get(model, ()))

    def read(self, header: bytes, model: Model) -> InferenceRequest:
        """The checked request a binary request's JSON header holds, kept or checked now."""
        kept = self._models.get(model)
        if kept is None:
            kept = self._models[model] = {}
        else:
            request = kept.get(header)
            if request is not None:
                return request
        request = read_request(parse_json(header, non_finite_ok=False), model, self.max_batch)
        if request.binary_size is not None and request.id is None and len(header) <= self.largest:
            if len(kept) >= self.entries:
                del kept[next(iter(kept))]
            kept[header] = request
        return request


def _flag(parameters: dict[str, Any], name: str, where: str) -> bool:
    value = parameters.get(name, False)
    if type(value) is not bool:
        raise MalformedRequest(f'{where}: "{name}" must be true or false')
    return value


def _binary_size(parameters: Any) -> int | None:
    if parameters is None:
        return None
    if not isinstance(parameters, dict):
        raise MalformedRequest('an input\'s "parameters" must be an object')
    size = parameters.get("binary_data_size")
    if size is None:
        return None
    if type(size) is not int or size < 0:
        raise MalformedRequest("binary_data_size must be a whole number of bytes")
    return size


def _outputs(wanted: Any, model: Model, binary: bool) -> Outputs:
    """The output tensors asked for, each with its encoding."""
    if not isinstance(wanted, list) or not all(isinstance(o, dict) for o in wanted):
        raise MalformedRequest('"outputs" must be a list of {"name": ...} objects')
    outputs = []
    for output in wanted:
        name = output.get("name")
        if name not in model.output_names:
            raise MalformedRequest(
                f"unknown output {str(name)[:200]!r}; this model has {model.output_names}"
            )
        parameters = output.get("parameters")
        as_binary = binary
        if parameters is not None:
            if not isinstance(parameters, dict):
                raise MalformedRequest(f'output {name!r}: "parameters" must be an object')
            if parameters.get("class_count"):
                raise MalformedRequest(
                    "the classification extension (class_count) is not supported; "
                    "ask for the probabilities output"
                )
            if "binary_data" in parameters:
                as_binary = _flag(parameters, "binary_data", f"output {name!r}")
        outputs.append((str(name), as_binary))
    if len({name for name, _ in outputs}) != len(outputs):
        raise MalformedRequest('an output is named twice in "outputs"')
    return tuple(outputs)
