"""`python -m arm64 bench`, the figures the sub-millisecond claim is judged by: a short real run
(shape, not speed) and the verdict's rule."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from arm64.bench import judge
from tests.conftest import TrainedStore
from tests.processes import REPO_ROOT


def runs(p50_c1: float, errors: int = 0) -> list[dict[str, float]]:
    return [
        {"concurrency": 1, "p50_ms": p50_c1, "errors": errors},
        {"concurrency": 16, "p50_ms": 5.0, "errors": 0},
    ]


@pytest.mark.parametrize(
    ("p99", "p50_c1", "errors", "holds"),
    [
        (0.02, 0.4, 0, True),
        (1.0, 0.4, 0, False),  # "under 1 ms": 1 ms itself misses
        (0.02, 1.2, 0, False),
        (0.02, 0.4, 3, False),  # a latency from failed requests proves nothing
    ],
)
def test_the_claim_needs_both_figures_under_1_ms(
    p99: float, p50_c1: float, errors: int, holds: bool
) -> None:
    verdict = judge({"p50": 0.01, "p99": p99}, runs(p50_c1, errors))
    assert verdict["holds"] is holds
    assert (verdict["inference_p99_ms"], verdict["predict_c1_p50_ms"]) == (p99, p50_c1)


@pytest.mark.bench
def test_bench_writes_results_and_the_job_summary(
    trained_store: TrainedStore, tmp_path: Path
) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("earlier steps\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "arm64",
            "bench",
            "--model",
            str(trained_store.exported["iris-classifier"]),
            "--calls",
            "500",
            "--duration",
            "1",
            "--warmup",
            "1",
            "--out",
            str(tmp_path / "bench"),
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "GITHUB_STEP_SUMMARY": str(summary)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["inference_ms"]["count"] == 500
    assert 0 < report["inference_ms"]["p50"] <= report["inference_ms"]["p99"]
    assert [run["concurrency"] for run in report["predict"]] == [1, 16]
    assert all(run["requests"] > 0 and run["errors"] == 0 for run in report["predict"])
    assert report["claim"] == judge(report["inference_ms"], report["predict"])
    text = summary.read_text()
    assert text.startswith("earlier steps\n### arm64 latency\n")
    assert "/predict, 1 row, concurrency 16" in text
    assert text.endswith((tmp_path / "bench.md").read_text() + "\n")
