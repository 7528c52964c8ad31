"""The verdict of a check: percentiles, the pass/fail roll-up, and the table the docs show."""

import json
from pathlib import Path
from typing import Any

import pytest

from arm64 import report

MODEL = "iris-classifier"


def observation(machine: str, emulated: bool, label: int = 0) -> dict[str, Any]:
    outputs = {"label": [0, label], "probabilities": [[0.9, 0.1], [0.2, 0.8]]}
    body = {"prediction": "setosa", "confidence": 0.9, "inference_time_ms": 0.1}
    return {
        "label": f"{machine}, {'emulated' if emulated else 'native'}",
        "emulated": emulated,
        "machine": machine,
        "versions": {"onnxruntime": "1.32.0", "numpy": "2.4.6"},
        "outputs": {MODEL: {"batch": outputs, "rows": outputs}},
        "answers": {MODEL: {"predict, one row": {"status": 200, "body": body}}},
        "inference_time_ms": {MODEL: [0.5, 0.7, 0.6, 0.9]},
        "server_start_seconds": {MODEL: 1.0},
        "elapsed_seconds": 10.0,
    }


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    (tmp_path / "models" / MODEL).mkdir(parents=True)
    (tmp_path / "models" / MODEL / "metadata.json").write_text(
        json.dumps(
            {
                "task": "classification",
                "outputs": {"label": "label", "probabilities": "probabilities"},
            }
        )
    )
    entry = {"name": MODEL, "task": "classification", "dir": f"models/{MODEL}", "held_out_rows": 2}
    (tmp_path / "manifest.json").write_text(json.dumps({"models": [entry]}))
    (tmp_path / "reference.json").write_text(json.dumps(observation("x86_64", False)))
    return tmp_path


def test_nearest_rank_percentiles() -> None:
    values = list(range(1, 101))
    assert report.percentile(values, 50) == 50
    assert report.percentile(values, 99) == 99
    assert report.percentile([3.0], 99) == 3.0
    assert report.latency_summary([0.5, 0.7, 0.6, 0.9]) == {
        "count": 4,
        "p50": 0.6,
        "p99": 0.9,
        "max": 0.9,
    }
    with pytest.raises(ValueError, match="no values"):
        report.percentile([], 50)


def test_same_answers_pass_and_the_table_says_emulated(bundle: Path, tmp_path: Path) -> None:
    result = report.compare(bundle, observation("aarch64", True))
    assert result["passed"]
    json_path, markdown_path = report.write(result, "make verify-arm64", tmp_path / "out" / "v")
    text = markdown_path.read_text()
    assert "`make verify-arm64`: passed" in text
    assert "aarch64 (emulated: an upper bound, not a native figure)" in text
    assert "| iris-classifier | 2 " in text
    assert "0 (bit-identical)" in text
    assert json.loads(json_path.read_text())["command"] == "make verify-arm64"


def test_a_different_label_fails_the_whole_check(bundle: Path) -> None:
    result = report.compare(bundle, observation("aarch64", True, label=0 + 1))
    assert not result["passed"]
    assert result["models"][0]["outputs"]["label_mismatches"] == 1
    assert "FAILED" in report.markdown(result, "make verify-arm64")


def test_a_different_body_fails_the_whole_check(bundle: Path) -> None:
    candidate = observation("aarch64", False)
    candidate["answers"][MODEL]["predict, one row"]["body"]["prediction"] = "virginica"
    result = report.compare(bundle, candidate)
    assert not result["passed"]
    assert result["models"][0]["answers"]["predict, one row"]["differences"] == [
        "$.prediction: 'virginica', expected 'setosa'"
    ]
    assert "emulated" not in report.markdown(result, "make arm64-check")


def test_the_table_says_what_building_the_root_cost(bundle: Path) -> None:
    result = report.compare(bundle, observation("aarch64", True))
    result["root_seconds"] = 2.0
    result["root_build"] = {
        "root": {"seconds": 364, "built": "2026-12-01T21:49:00Z", "load_average": 4.9},
        "runtime": None,  # a mark from before marks held anything
    }
    text = report.markdown(result, "make verify-arm64")
    assert "after 2 s building or finding the arm64 root" in text
    assert (
        "this machine built the root (debootstrap) in 364 s on 2026-12-01 (load average 4.9)"
        in text
    )
    assert "runtime set" not in text
