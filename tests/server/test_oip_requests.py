"""Open Inference Protocol requests: the checks of the JSON, and the cache of binary headers."""

from pathlib import Path

import numpy as np
import orjson
import pytest

from server.errors import MalformedRequest
from server.model import Model, Origin, load_model
from server.oip_requests import HeaderCache, InferenceRequest, read_request
from server.registry import read_model_dir
from tests.samples import SETOSA as ROW


def load(path: Path) -> Model:
    return load_model(read_model_dir(path), Origin(str(path), "local", "1"))


def batch(payload: object, model: Model, max_batch: int = 10) -> np.ndarray:
    """A JSON request's values, after its checks."""
    return read_request(payload, model, max_batch).batch(None, model)


def through(
    cache: HeaderCache, body: bytes, length: int, model: Model
) -> tuple[InferenceRequest, np.ndarray]:
    """A binary request read as the server reads it: its JSON header through the cache."""
    request = cache.read(body[:length], model)
    return request, request.batch(memoryview(body)[length:], model)


@pytest.fixture(scope="module")
def model(model_dirs: dict[str, Path]) -> Model:
    return load(model_dirs["iris"])


def tensor(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "name": "input",
        "shape": [1, 4],
        "datatype": "FP32",
        "data": list(ROW.values()),
    }
    return {"inputs": [{**base, **overrides}]}


def test_oip_flat_and_nested(model: Model) -> None:
    flat = batch(tensor(shape=[2, 4], data=list(ROW.values()) * 2), model)
    nested = batch(tensor(shape=[2, 4], data=[list(ROW.values())] * 2), model)
    assert flat.shape == nested.shape == (2, 4)
    assert np.array_equal(flat, nested)


@pytest.mark.parametrize(
    "overrides",
    [
        {"name": "other"},
        {"datatype": "BYTES"},
        {"shape": [1]},
        {"shape": [0, 4], "data": []},
        {"shape": [1, 4.0]},
        {"data": [True, False, True, False]},
        {"data": "1,2,3,4"},
        {"data": [1, 2, 3]},
        {"data": [1, None, 3, 4]},
    ],
)
def test_oip_errors(model: Model, overrides: dict[str, object]) -> None:
    with pytest.raises(MalformedRequest):
        batch(tensor(**overrides), model)


def test_oip_outputs(model: Model) -> None:
    assert read_request(tensor(), model, 10).outputs == (("label", False), ("probabilities", False))
    named = read_request({**tensor(), "outputs": [{"name": "label"}]}, model, 10)
    assert named.outputs == (("label", False),)
    with pytest.raises(MalformedRequest):
        read_request({**tensor(), "outputs": [{"name": "nope"}]}, model, 10)


@pytest.mark.parametrize("copies", [2, 3, 10_000])
def test_oip_outputs_named_more_than_once_are_refused(model: Model, copies: int) -> None:
    """Each copy was serialised in full: 1 MB of request made an 803 MB answer."""
    wanted = [{"name": "probabilities"}] * copies
    with pytest.raises(MalformedRequest, match="named twice") as caught:
        read_request({**tensor(), "outputs": wanted}, model, 10)
    assert len(str(caught.value)) < 300


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"outputs": None}, '"outputs" must be a list'),
        ({"id": 42}, '"id" must be a string'),
        ({"parameters": []}, '"parameters" must be an object'),
    ],
)
def test_optional_oip_fields_have_their_documented_types(
    model: Model, change: dict[str, object], message: str
) -> None:
    payload = {
        "inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}],
        **change,
    }

    def parse() -> None:
        batch(payload, model)

    with pytest.raises(MalformedRequest, match=message):
        parse()


@pytest.mark.parametrize("datatype", [{}, [], None, 5, "BYTES"])
def test_any_datatype_value_is_a_400_never_a_crash(model: Model, datatype: object) -> None:
    tensor = {"name": "input", "shape": [1, 4], "datatype": datatype, "data": [1, 2, 3, 4]}
    with pytest.raises(MalformedRequest, match="datatype must be one of FP32, FP64"):
        batch({"inputs": [tensor]}, model)


def binary_body(rows: list[list[float]], **extra: object) -> tuple[bytes, int]:
    """A binary-extension body (JSON header, then FP32 bytes) and its header's length."""
    data = np.asarray(rows, dtype="<f4").tobytes()
    tensor = {"name": "input", "shape": [len(rows), len(rows[0])], "datatype": "FP32",
              "parameters": {"binary_data_size": len(data)}}  # fmt: skip
    header = orjson.dumps({"inputs": [tensor], **extra})
    return header + data, len(header)


SETOSA_ROW = list(ROW.values())


def test_a_repeated_binary_header_is_parsed_and_checked_once(
    model: Model, header_checks: list[object]
) -> None:
    cache = HeaderCache(max_batch=10)
    for scale in (1.0, 2.0, 3.0):
        body, length = binary_body([[v * scale for v in SETOSA_ROW]])
        request, rows = through(cache, body, length, model)
        assert rows.tolist() == [[pytest.approx(v * scale) for v in SETOSA_ROW]]
        assert request.outputs == (("label", False), ("probabilities", False))
    assert len(header_checks) == 1
    assert len(cache.kept(model)) == 1


def test_the_values_behind_a_kept_header_are_checked_every_time(model: Model) -> None:
    cache = HeaderCache(max_batch=10)
    body, length = binary_body([SETOSA_ROW])
    through(cache, body, length, model)
    nan = body[:length] + np.asarray([[np.nan, 1, 1, 1]], dtype="<f4").tobytes()
    with pytest.raises(MalformedRequest, match="finite"):
        through(cache, nan, length, model)
    with pytest.raises(MalformedRequest, match="binary_data_size is 16, but 12 bytes follow"):
        through(cache, body[:-4], length, model)
    with pytest.raises(MalformedRequest, match="binary_data_size is 16, but 20 bytes follow"):
        through(cache, body + b"\0" * 4, length, model)


def test_a_kept_header_is_checked_again_for_another_model(
    model: Model, model_dirs: dict[str, Path]
) -> None:
    """A swap to a model with other inputs: the header is re-checked, never trusted."""
    import gc
    import weakref

    cache = HeaderCache(max_batch=10)
    body, length = binary_body([SETOSA_ROW])
    through(cache, body, length, model)
    wine = load(model_dirs["wine"])
    with pytest.raises(MalformedRequest, match=r"shape must be \[N, 13\]"):
        through(cache, body, length, wine)
    assert through(cache, body, length, model)[1].shape == (1, 4)
    other_iris = load(model_dirs["iris"])
    through(cache, body, length, other_iris)  # kept for this model now
    gone = weakref.ref(other_iris)
    del other_iris
    gc.collect()
    assert gone() is None, "the cache kept a model alive"


def header_of(rows: int) -> bytes:
    body, length = binary_body([SETOSA_ROW] * rows)
    return body[:length]


def test_what_the_cache_keeps_is_bounded(model: Model) -> None:
    cache = HeaderCache(max_batch=100, entries=3, largest=300)
    for n in range(1, 11):  # ten shapes: the earliest kept go first
        body, length = binary_body([SETOSA_ROW] * n)
        through(cache, body, length, model)
    assert cache.kept(model) == [header_of(8), header_of(9), header_of(10)]

    cache = HeaderCache(max_batch=100, entries=3, largest=300)
    padded, length = binary_body([SETOSA_ROW], parameters={"pad": "x" * 300})
    with_id, id_length = binary_body([SETOSA_ROW], id="request-1")
    json_data = orjson.dumps({"inputs": [
        {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": SETOSA_ROW}]})  # fmt: skip
    bad, bad_length = binary_body([SETOSA_ROW], outputs=[{"name": "nope"}])
    through(cache, padded, length, model)
    assert through(cache, with_id, id_length, model)[0].id == "request-1"
    assert through(cache, json_data, len(json_data), model)[1].shape == (1, 4)
    with pytest.raises(MalformedRequest, match="unknown output"):
        through(cache, bad, bad_length, model)
    assert cache.kept(model) == [], "kept a header too large, naming an id, with JSON values or bad"


def test_a_champion_and_a_challenger_each_keep_their_headers(
    model: Model, model_dirs: dict[str, Path], header_checks: list[object]
) -> None:
    """Requests split between two models: a repeated header is checked once for each."""
    challenger = load(model_dirs["iris"])
    cache = HeaderCache(max_batch=10)
    body, length = binary_body([SETOSA_ROW])
    for turn in range(20):
        through(cache, body, length, model if turn % 2 else challenger)
    assert len(header_checks) == 2


def test_a_header_whose_size_cannot_match_its_shape_is_refused(model: Model) -> None:
    """16 bytes are needed for [1, 4] FP32: 15 can never be right, so it is not kept either."""
    cache = HeaderCache(max_batch=10)
    body, length = binary_body([SETOSA_ROW])
    wrong = body[:length].replace(b'"binary_data_size":16', b'"binary_data_size":15')
    with pytest.raises(MalformedRequest, match=r"binary_data_size is 15; shape \[1, 4\] of FP32"):
        through(cache, wrong + body[length:-1], len(wrong), model)
    assert cache.kept(model) == []
