"""The model contract: metadata rules shared by training and serving, and the input bound."""

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from server.contract import (
    ContractError,
    TensorSpec,
    check_answers,
    check_runtime,
    largest_accepted,
    parse_metadata,
)


@pytest.fixture
def metadata(model_dirs: dict[str, Path]) -> dict[str, Any]:
    return dict(json.loads((model_dirs["iris"] / "metadata.json").read_text()))


def test_training_writes_metadata_that_keeps_the_contract(model_dirs: dict[str, Path]) -> None:
    for directory in model_dirs.values():
        contract = parse_metadata(json.loads((directory / "metadata.json").read_text()))
        assert contract.input_dtype is np.float32
        assert contract.output_names == list(contract.outputs.values())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"task": None}, "task must be classification or regression"),
        ({"features": "abc"}, "features must be a non-empty list"),
        ({"classes": None}, "classes must list the classes"),
        ({"input_name": ""}, "name the model's input and outputs"),
        ({"outputs": {"label": "label"}}, "outputs must name label, probabilities"),
        ({"outputs": {"value": "value"}}, "outputs must name label, probabilities"),
        ({"input_dtype": "float16"}, "input_dtype must be one of float32, float64"),
        ({"input_example": [[1, 2]]}, "rows of 4 numbers"),
        ({"input_example": [["a", 1, 2, 3]]}, "rows of 4 numbers"),
        ({"metrics": [1]}, "metrics must be an object"),
    ],
)
def test_metadata_rules(metadata: dict[str, Any], change: dict[str, Any], message: str) -> None:
    with pytest.raises(ContractError, match=message):
        parse_metadata({**metadata, **change})


def test_a_regressor_needs_a_value_output(metadata: dict[str, Any]) -> None:
    regressor = {**metadata, "task": "regression", "classes": []}
    with pytest.raises(ContractError, match="outputs must name value"):
        parse_metadata(regressor)
    assert parse_metadata({**regressor, "outputs": {"value": "v"}}).output_names == ["v"]


def test_the_runtime_must_agree_with_the_metadata(metadata: dict[str, Any]) -> None:
    contract = parse_metadata(metadata)
    outputs = [
        TensorSpec("label", np.int64, (None,)),
        TensorSpec("probabilities", np.float32, (None, 3)),
    ]
    good = [TensorSpec("input", np.float32, (None, 4))]
    assert check_runtime(contract, good, outputs) is np.float32
    with pytest.raises(ContractError, match="unsupported type"):
        check_runtime(contract, [TensorSpec("input", np.int64, (None, 4))], outputs)
    with pytest.raises(ContractError, match="metadata lists 4 features"):
        check_runtime(contract, [TensorSpec("input", np.float32, (None, 5))], outputs)
    with pytest.raises(ContractError, match="no output named probabilities"):
        check_runtime(contract, good, outputs[:1])


def test_answers_must_have_one_label_per_row_within_the_classes(metadata: dict[str, Any]) -> None:
    contract = parse_metadata(metadata)
    check_answers(contract, 2, [np.array([0, 2]), np.full((2, 3), 1 / 3, np.float32)])
    with pytest.raises(ContractError, match="outside the metadata's classes"):
        check_answers(contract, 2, [np.array([0, 3]), np.full((2, 3), 1 / 3, np.float32)])
    with pytest.raises(ContractError, match="probabilities have shape"):
        check_answers(contract, 2, [np.array([0, 1]), np.full((2, 2), 0.5, np.float32)])
    with pytest.raises(ContractError, match="one integer label per row"):
        check_answers(contract, 2, [np.array([0.0, 1.0]), np.full((2, 3), 1 / 3, np.float32)])


def test_the_input_bound_is_the_largest_value_still_finite_in_the_type() -> None:
    largest = largest_accepted(np.float32)
    assert np.isfinite(np.float32(largest))
    with np.errstate(over="ignore"):
        assert np.isinf(np.float32(math.nextafter(largest, math.inf)))
    assert largest_accepted(np.float64) == float(np.finfo(np.float64).max)
