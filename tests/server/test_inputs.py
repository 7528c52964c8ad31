import json
from pathlib import Path

import numpy as np
import orjson
import pytest

from server.errors import InvalidInput, MalformedRequest, PayloadTooLarge
from server.inputs import parse_json, simple_batch
from server.model import Model, Origin, load_model
from server.registry import read_model_dir
from server.tensors import NON_FINITE
from tests.samples import SETOSA as ROW


@pytest.fixture(scope="module")
def model(model_dirs: dict[str, Path]) -> Model:
    path: Path = model_dirs["iris"]
    return load_model(read_model_dir(path), Origin(str(path), "local", "1"))


def test_single_row(model: Model) -> None:
    rows, single = simple_batch({"features": ROW}, model, 10)
    assert single
    assert rows.dtype == np.float32
    assert rows.tolist() == [[pytest.approx(v) for v in ROW.values()]]


def test_feature_order_comes_from_the_model(model: Model) -> None:
    shuffled = dict(reversed(list(ROW.items())))
    rows, _ = simple_batch({"features": shuffled}, model, 10)
    assert rows[0, 0] == pytest.approx(5.1)


def test_batch(model: Model) -> None:
    rows, single = simple_batch({"instances": [ROW, ROW, ROW]}, model, 3)
    assert not single
    assert rows.shape == (3, 4)
    with pytest.raises(PayloadTooLarge):
        simple_batch({"instances": [ROW] * 4}, model, 3)


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({"features": {}}, MalformedRequest),
        ({"features": {**ROW, "x": 1}}, MalformedRequest),
        ({"features": {**ROW, "sepal width (cm)": float("nan")}}, InvalidInput),
        ({"features": {**ROW, "sepal width (cm)": float("inf")}}, InvalidInput),
        ({"features": {**ROW, "sepal width (cm)": 10**400}}, InvalidInput),
        ({"features": {**ROW, "sepal width (cm)": [1]}}, InvalidInput),
        ({"rows": []}, InvalidInput),
        ("text", InvalidInput),
    ],
)
def test_simple_errors(model: Model, payload: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        simple_batch(payload, model, 10)


def test_long_unknown_feature_names_are_truncated_in_the_message(model: Model) -> None:
    with pytest.raises(MalformedRequest) as caught:
        simple_batch({"features": {**ROW, "x" * 100_000: 1}}, model, 10)
    assert len(str(caught.value)) < 400


def test_parse_json() -> None:
    assert parse_json(b'{"a": 1}') == {"a": 1}
    assert parse_json(b"\xef\xbb\xbf[1]") == [1]  # a byte order mark is tolerated
    for bad in (b"", b"{", b"\xff", b"[" * 100_000, b'{"a": -NaN}', b'{"a": nan}'):
        with pytest.raises(MalformedRequest):
            parse_json(bad)


@pytest.mark.parametrize("text", ['"\\ud800"', '"a\\udfff"', '{"\\ud83d": 1}'])
def test_lone_surrogates_are_malformed_json(text: str) -> None:
    """They cannot be encoded again: echoed in an answer (the OIP id) they made a 500."""
    with pytest.raises(MalformedRequest, match="surrogate"):
        parse_json(text.encode())


@pytest.mark.parametrize(
    "token", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1" + "0" * 400]
)
def test_non_finite_numbers_reach_validation_as_out_of_range(model: Model, token: str) -> None:
    """The simple API names the feature: the value arrives as a number every check refuses."""
    row = {**ROW, "sepal width (cm)": 0.25}
    body = orjson.dumps({"features": row}).replace(b"0.25", token.encode())
    with pytest.raises(InvalidInput, match=r"'sepal width \(cm\)'.*NaN, infinities"):
        simple_batch(parse_json(body), model, 10)
    missing = b'{"features": {"sepal length (cm)": %s}}' % token.encode()
    with pytest.raises(MalformedRequest, match="missing feature"):  # as before: 400 comes first
        simple_batch(parse_json(missing), model, 10)


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_malformed_for_the_inference_protocol(token: str) -> None:
    body = b'{"inputs": [{"data": [1, %s]}], "parameters": {"x": 1}}' % token.encode()
    with pytest.raises(MalformedRequest, match="finite"):
        parse_json(body, non_finite_ok=False)


def test_many_non_finite_numbers_are_refused_without_naming_each(model: Model) -> None:
    body = b'{"instances": [' + b",".join([b'{"sepal length (cm)": NaN}'] * 1000) + b"]}"
    with pytest.raises(InvalidInput, match="NaN"):
        parse_json(body)


def test_the_slow_parser_is_never_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """Python's json module took 25 ms for a 1 MiB body ending in NaN; orjson takes 2."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("json.loads was called")

    monkeypatch.setattr(json, "loads", refuse)
    body = b'{"instances": [' + b",".join([b'{"a": 1.5}'] * 1000) + b', {"a": NaN}]}'
    assert parse_json(body)["instances"][-1]["a"] == NON_FINITE
    with pytest.raises(MalformedRequest):
        parse_json(b'{"a": "\\ud800"}')


def test_a_non_finite_number_is_refused_for_a_double_model_too(model_dirs: dict[str, Path]) -> None:
    """The marker is not a number a float64 model would take (1e39 would have been)."""
    path = model_dirs["diabetes"]
    double = load_model(read_model_dir(path), Origin(str(path), "local", "1"))
    double.input_limit = float(np.finfo(np.float64).max)  # as for a model with a double input
    row = dict.fromkeys(double.features, 0.5)
    body = orjson.dumps({"features": {**row, double.features[0]: 0.25}}).replace(b"0.25", b"NaN")
    with pytest.raises(InvalidInput, match="NaN, infinities"):
        simple_batch(parse_json(body), double, 10)


@pytest.mark.parametrize("before", ["abc", "été", "日本語", "😀"])
def test_the_non_finite_number_is_named_after_non_ascii_text(model: Model, before: str) -> None:
    """orjson reports the error's position in characters; the token is found in bytes."""
    tensor = {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": list(ROW.values())}
    body = orjson.dumps({"id": before, "inputs": [tensor]}).replace(b"0.2]", b"1e400]")
    with pytest.raises(MalformedRequest, match="'1e400'"):
        parse_json(body, non_finite_ok=False)
    parsed = parse_json(orjson.dumps({"note": before, "v": [1.5, 2.5]}).replace(b"2.5", b"NaN"))
    assert parsed == {"note": before, "v": [1.5, NON_FINITE]}
