"""What "the same answers" means between two architectures, as plain functions.

Model outputs: identical labels, probabilities within 1e-6, regression values within 1e-9, on
every held-out row, whether the rows are scored as one batch or one at a time. Server answers:
the same status and the same JSON body, value for value, apart from timing fields.
"""

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

PROBABILITY_TOLERANCE = 1e-6
VALUE_TOLERANCE = 1e-9
TIMING_FIELDS = frozenset({"inference_time_ms"})
MODES = ("batch", "rows")  # the held-out rows as one batch, and one row per call


@dataclass(frozen=True)
class OutputCheck:
    """One model's outputs on one architecture against the reference's."""

    model: str
    task: str
    rows: int
    label_mismatches: int | None  # classifiers only
    max_probability_diff: float | None
    max_value_diff: float | None  # regressors only
    bit_identical: bool
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def _largest_gap(expected: np.ndarray, got: np.ndarray) -> float:
    return float(np.max(np.abs(expected - got))) if expected.size else 0.0


def check_outputs(
    model: str, metadata: dict[str, Any], reference: dict[str, Any], candidate: dict[str, Any]
) -> OutputCheck:
    """Compare one model's outputs (guest.py's per-model JSON) with the reference's."""
    task = metadata["task"]
    roles = metadata["outputs"]
    problems: list[str] = []
    identical = True
    rows = 0
    mismatches = 0
    probability_gap = value_gap = 0.0
    for mode in MODES:
        expected_outputs, got_outputs = reference[mode], candidate.get(mode, {})
        for role, name in roles.items():
            if name not in got_outputs:
                problems.append(f"{mode}: no output {name!r}")
                continue
            expected = np.asarray(expected_outputs[name], dtype=np.float64)
            got = np.asarray(got_outputs[name], dtype=np.float64)
            if expected.shape != got.shape:
                problems.append(f"{mode}: {name} has shape {got.shape}, expected {expected.shape}")
                continue
            identical = identical and bool(np.array_equal(expected, got))
            if role == "label":
                rows = len(expected)
                wrong = int(np.count_nonzero(expected != got))
                mismatches = max(mismatches, wrong)
                if wrong:
                    problems.append(f"{mode}: {wrong} of {len(expected)} labels differ")
            elif role == "probabilities":
                gap = _largest_gap(expected, got)
                probability_gap = max(probability_gap, gap)
                if not gap <= PROBABILITY_TOLERANCE:
                    problems.append(
                        f"{mode}: probabilities differ by up to {gap:.3g} "
                        f"(tolerance {PROBABILITY_TOLERANCE:g})"
                    )
            elif role == "value":
                rows = len(expected)
                gap = _largest_gap(expected, got)
                value_gap = max(value_gap, gap)
                if not gap <= VALUE_TOLERANCE:
                    problems.append(
                        f"{mode}: values differ by up to {gap:.3g} (tolerance {VALUE_TOLERANCE:g})"
                    )
    classifier = task == "classification"
    return OutputCheck(
        model=model,
        task=task,
        rows=rows,
        label_mismatches=mismatches if classifier else None,
        max_probability_diff=probability_gap if classifier else None,
        max_value_diff=None if classifier else value_gap,
        bit_identical=identical and not problems,
        problems=problems,
    )


def body_differences(expected: Any, got: Any, path: str = "$") -> list[str]:
    """Where two JSON documents differ, ignoring timing fields; [] when they are the same."""
    if isinstance(expected, dict) and isinstance(got, dict):
        differences = []
        for key in sorted(set(expected) | set(got)):
            if key in TIMING_FIELDS:
                continue
            if key not in got:
                differences.append(f"{path}.{key}: missing")
            elif key not in expected:
                differences.append(f"{path}.{key}: unexpected")
            else:
                differences += body_differences(expected[key], got[key], f"{path}.{key}")
        return differences
    if isinstance(expected, list) and isinstance(got, list):
        if len(expected) != len(got):
            return [f"{path}: {len(got)} items, expected {len(expected)}"]
        differences = []
        for index, (left, right) in enumerate(zip(expected, got, strict=True)):
            differences += body_differences(left, right, f"{path}[{index}]")
        return differences
    # bool is an int in Python: 1 == True must not pass as the same JSON value.
    if type(expected) is not type(got) or expected != got:
        return [f"{path}: {got!r}, expected {expected!r}"]
    return []


def answer_differences(expected: dict[str, Any], got: dict[str, Any]) -> list[str]:
    """Status and body differences between two recorded answers ({"status", "body"})."""
    problems = []
    if expected["status"] != got["status"]:
        problems.append(f"status {got['status']}, expected {expected['status']}")
    return problems + body_differences(expected["body"], got["body"])
