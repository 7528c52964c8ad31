"""Smoke runs of the load-test harness: real server, real wrk, a few seconds, shape not speed."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TrainedStore
from tests.processes import REPO_ROOT

pytestmark = pytest.mark.bench

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_module(
    module: str, args: list[str], store: TrainedStore
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLFLOW_TRACKING_URI": store.tracking_uri}
    for name in ("URL", "API_KEY", "MODEL_URI"):
        env.pop(name, None)
    completed = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed


def test_loadtest_prints_table_writes_json_and_png(
    trained_store: TrainedStore, tmp_path: Path
) -> None:
    out = tmp_path / "results"
    args = ["--duration", "1", "--warmup", "0", "--concurrency", "1,4", "--batch-rows", "10"]
    completed = run_module("loadtest.run", [*args, "--out-dir", str(out)], trained_store)

    lines = completed.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("Body"))
    assert lines[header].split() == [
        "Body",
        "Concurrency",
        "Throughput",
        "p50",
        "p95",
        "p99",
        "Errors",
    ]
    table = lines[header + 2 : header + 6]
    assert [row.split()[:3] for row in table] == [
        ["1", "row", "1"],
        ["1", "row", "4"],
        ["10", "rows", "1"],
        ["10", "rows", "4"],
    ]
    report = json.loads((out / "loadtest.json").read_text())
    assert report["kind"] == "loadtest"
    assert {"machine", "config", "results"} <= report.keys()
    assert len(report["results"]) == 4
    for result in report["results"]:
        assert {
            "body",
            "concurrency",
            "rps",
            "p50_ms",
            "p95_ms",
            "p99_ms",
            "errors",
        } <= result.keys()
        assert result["requests"] > 0
        assert result["errors"] == 0
        assert 0 < result["p50_ms"] <= result["p95_ms"] <= result["p99_ms"]
    assert (out / "loadtest.png").read_bytes().startswith(PNG_MAGIC)


def test_bench_server_reports_every_figure(trained_store: TrainedStore, tmp_path: Path) -> None:
    out = tmp_path / "results"
    args = [
        "--server-only",
        "--duration", "1",
        "--warmup", "0",
        "--repeats", "1",
        "--soak-requests", "0",
        "--start-repeats", "1",
        "--inprocess-seconds", "0.02",
        "--out-dir", str(out),
    ]  # fmt: skip
    completed = run_module("loadtest.bench", args, trained_store)

    report = json.loads((out / "bench.json").read_text())
    assert report["kind"] == "bench"
    assert {"machine", "config", "model", "agreement", "figures", "runs"} <= report.keys()
    assert set(report["agreement"].values()) == {report["agreement"]["this server"]}
    figures = {f["name"]: f for f in report["figures"]}
    with_targets = [f for f in figures.values() if f["target"]]
    assert len(with_targets) >= 8, sorted(figures)
    for figure in report["figures"]:
        assert isinstance(figure["value"], (int, float)), figure
        assert figure["met"] in (True, False, None)
        assert figure["name"] in completed.stdout
    assert "ratio: this server / constant JSON, c16" in figures
    assert (out / "bench.png").read_bytes().startswith(PNG_MAGIC)
    assert (out / "bench.md").read_text().count("\n|") >= len(figures)
