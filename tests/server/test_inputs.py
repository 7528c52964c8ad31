from pathlib import Path

import numpy as np
import pytest

from server.errors import InvalidInput, MalformedRequest, PayloadTooLarge
from server.inputs import oip_batch, parse_json, requested_outputs, simple_batch
from server.model import Model, Origin, load_model
from server.registry import read_model_dir
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
    assert np.isnan(parse_json(b"NaN"))  # accepted here, refused as 422 by validation
    for bad in (b"", b"{", b"\xff", b"[" * 100_000):
        with pytest.raises(MalformedRequest):
            parse_json(bad)


def tensor(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "name": "input",
        "shape": [1, 4],
        "datatype": "FP32",
        "data": list(ROW.values()),
    }
    return {"inputs": [{**base, **overrides}]}


def test_oip_flat_and_nested(model: Model) -> None:
    flat = oip_batch(tensor(shape=[2, 4], data=list(ROW.values()) * 2), model, 10)
    nested = oip_batch(tensor(shape=[2, 4], data=[list(ROW.values())] * 2), model, 10)
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
        oip_batch(tensor(**overrides), model, 10)


def test_oip_outputs(model: Model) -> None:
    assert requested_outputs({}, model) == ["label", "probabilities"]
    assert requested_outputs({"outputs": [{"name": "label"}]}, model) == ["label"]
    with pytest.raises(MalformedRequest):
        requested_outputs({"outputs": [{"name": "nope"}]}, model)


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
        oip_batch(payload, model, 10)
        requested_outputs(payload, model)

    with pytest.raises(MalformedRequest, match=message):
        parse()


@pytest.mark.parametrize("datatype", [{}, [], None, 5, "BYTES"])
def test_any_datatype_value_is_a_400_never_a_crash(model: Model, datatype: object) -> None:
    tensor = {"name": "input", "shape": [1, 4], "datatype": datatype, "data": [1, 2, 3, 4]}
    with pytest.raises(MalformedRequest, match="datatype must be FP32 or FP64"):
        oip_batch({"inputs": [tensor]}, model, 10)
