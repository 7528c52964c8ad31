"""What counts as the same answer between two architectures: tolerances and bodies."""

import copy
from typing import Any

import pytest

from arm64.compare import (
    PROBABILITY_TOLERANCE,
    VALUE_TOLERANCE,
    answer_differences,
    body_differences,
    check_outputs,
)

CLASSIFIER = {"task": "classification", "outputs": {"label": "label", "probabilities": "probs"}}
REGRESSOR = {"task": "regression", "outputs": {"value": "value"}}


def classifier_outputs() -> dict[str, Any]:
    one = {"label": [0, 2, 1], "probs": [[0.9, 0.05, 0.05], [0.1, 0.2, 0.7], [0.2, 0.6, 0.2]]}
    return {"batch": copy.deepcopy(one), "rows": copy.deepcopy(one)}


def regressor_outputs() -> dict[str, Any]:
    one = {"value": [[154.39814846819135], [168.74729460847678]]}
    return {"batch": copy.deepcopy(one), "rows": copy.deepcopy(one)}


def test_identical_outputs_pass_and_are_bit_identical() -> None:
    check = check_outputs("iris", CLASSIFIER, classifier_outputs(), classifier_outputs())
    assert check.passed
    assert check.bit_identical
    assert (check.rows, check.label_mismatches, check.max_probability_diff) == (3, 0, 0.0)


@pytest.mark.parametrize("mode", ["batch", "rows"])
def test_one_different_label_fails_in_either_mode(mode: str) -> None:
    candidate = classifier_outputs()
    candidate[mode]["label"][1] = 1
    check = check_outputs("iris", CLASSIFIER, classifier_outputs(), candidate)
    assert not check.passed
    assert check.label_mismatches == 1
    assert check.problems == [f"{mode}: 1 of 3 labels differ"]


def test_probabilities_within_tolerance_pass_but_are_not_bit_identical() -> None:
    candidate = classifier_outputs()
    candidate["rows"]["probs"][2][1] += PROBABILITY_TOLERANCE / 2
    check = check_outputs("iris", CLASSIFIER, classifier_outputs(), candidate)
    assert check.passed
    assert not check.bit_identical
    assert check.max_probability_diff == pytest.approx(PROBABILITY_TOLERANCE / 2)


def test_probabilities_beyond_tolerance_fail() -> None:
    candidate = classifier_outputs()
    candidate["batch"]["probs"][0][0] += 2 * PROBABILITY_TOLERANCE
    check = check_outputs("iris", CLASSIFIER, classifier_outputs(), candidate)
    assert not check.passed
    assert "probabilities differ by up to 2e-06" in check.problems[0]


def test_regression_values_are_held_to_1e_9() -> None:
    within = regressor_outputs()
    within["batch"]["value"][0][0] += VALUE_TOLERANCE / 2
    assert check_outputs("diabetes", REGRESSOR, regressor_outputs(), within).passed
    beyond = regressor_outputs()
    beyond["rows"]["value"][1][0] += 1e-8
    check = check_outputs("diabetes", REGRESSOR, regressor_outputs(), beyond)
    assert not check.passed
    assert check.max_value_diff == pytest.approx(1e-8, rel=1e-3)
    assert check.label_mismatches is None


def test_a_missing_output_or_a_different_shape_fails() -> None:
    missing = classifier_outputs()
    del missing["rows"]["probs"]
    assert check_outputs("iris", CLASSIFIER, classifier_outputs(), missing).problems == [
        "rows: no output 'probs'"
    ]
    short = classifier_outputs()
    short["batch"]["label"] = [0, 2]
    assert not check_outputs("iris", CLASSIFIER, classifier_outputs(), short).passed


def test_a_nan_probability_fails() -> None:
    candidate = classifier_outputs()
    candidate["batch"]["probs"][0][0] = float("nan")
    assert not check_outputs("iris", CLASSIFIER, classifier_outputs(), candidate).passed


def test_bodies_differ_nowhere_but_in_timing_fields() -> None:
    x86 = {"prediction": "setosa", "confidence": 0.99, "inference_time_ms": 0.13}
    arm = {"prediction": "setosa", "confidence": 0.99, "inference_time_ms": 0.74}
    assert body_differences(x86, arm) == []


@pytest.mark.parametrize(
    ("got", "expected_difference"),
    [
        ({"prediction": "virginica", "confidence": 0.99}, "$.prediction: 'virginica'"),
        ({"prediction": "setosa", "confidence": 0.9900000001}, "$.confidence: 0.9900000001"),
        ({"prediction": "setosa"}, "$.confidence: missing"),
        ({"prediction": "setosa", "confidence": 0.99, "extra": 1}, "$.extra: unexpected"),
    ],
)
def test_any_other_difference_in_a_body_is_reported(
    got: dict[str, Any], expected_difference: str
) -> None:
    differences = body_differences({"prediction": "setosa", "confidence": 0.99}, got)
    assert len(differences) == 1
    assert differences[0].startswith(expected_difference)


def test_nested_lists_and_json_types_are_compared_exactly() -> None:
    expected = {"outputs": [{"data": [0, 2, 1], "shape": [3]}]}
    assert body_differences(expected, {"outputs": [{"data": [0, 2], "shape": [3]}]}) == [
        "$.outputs[0].data: 2 items, expected 3"
    ]
    assert body_differences({"ready": True}, {"ready": 1}) == ["$.ready: 1, expected True"]
    assert body_differences({"v": 1}, {"v": 1.0}) == ["$.v: 1.0, expected 1"]


def test_a_different_status_is_a_difference() -> None:
    problems = answer_differences(
        {"status": 200, "body": {"status": "ready"}}, {"status": 503, "body": {"status": "ready"}}
    )
    assert problems == ["status 503, expected 200"]
