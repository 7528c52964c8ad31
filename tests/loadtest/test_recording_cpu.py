"""`python -m loadtest.recording_cpu` runs on a tiny count and prints every figure it promises."""

import re
from pathlib import Path

import pytest

from loadtest import recording_cpu

pytestmark = pytest.mark.unit


def test_it_prints_the_split_and_the_loop_stalls(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    page = tmp_path / "recording-cpu.md"
    recording_cpu.main(["--requests", "300", "--repeats", "1", "--cpu", "-1", "--busy", "100",
                        "--out", str(page)])  # fmt: skip
    out = capsys.readouterr().out
    assert out.strip() in page.read_text()  # what docs/results/recording-cpu.md holds
    assert "cores" in page.read_text()
    for label in ("record() on the event loop", "building rows", "SQLite write", "total"):
        assert re.search(rf"{re.escape(label)}\s+\d+\.\d\d\s+\d+\.\d\d$", out, re.M), out
    assert re.search(r"bytes written per row\s+\d+\s+\d+$", out, re.MULTILINE), out
    assert re.search(r"iteration p50 \d+ µs, p99 \d+ µs, p99\.9 \d+ µs, max \d+ µs", out), out
    assert re.search(r"writer drained [\d,]+ rows/s", out), out
