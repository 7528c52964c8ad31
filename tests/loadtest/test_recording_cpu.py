"""`python -m loadtest.recording_cpu` runs on a tiny count and prints every figure it promises."""

import re

import pytest

from loadtest import recording_cpu

pytestmark = pytest.mark.unit


def test_it_prints_the_split_and_the_loop_stalls(capsys: pytest.CaptureFixture[str]) -> None:
    recording_cpu.main(["--requests", "300", "--repeats", "1", "--cpu", "-1", "--busy", "100"])
    out = capsys.readouterr().out
    for label in ("record() on the event loop", "building rows", "SQLite write", "total"):
        assert re.search(rf"{re.escape(label)}\s+\d+\.\d\d$", out, re.MULTILINE), out
    assert re.search(r"iteration p50 \d+ µs, p99 \d+ µs, p99\.9 \d+ µs, max \d+ µs", out), out
    assert re.search(r"writer drained [\d,]+ rows/s", out), out
