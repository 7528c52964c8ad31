"""`make bench-compare`: two real servers, measured in alternating rounds, and its table."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from loadtest import compare
from loadtest.servers import REPO_ROOT
from tests.model_dirs import build_model_dir


def test_each_checkout_is_named_by_its_commit_and_whether_it_was_changed(tmp_path: Path) -> None:
    assert compare.commit(tmp_path) == str(tmp_path)  # not a repository

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", *args],
            check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip

    git("init", "-q")
    (tmp_path / "a").write_text("1")
    git("add", "a")
    git("commit", "-qm", "one")
    head = git("rev-parse", "--short", "HEAD")
    assert compare.commit(tmp_path) == f"commit {head}"
    (tmp_path / "a").write_text("2")
    assert compare.commit(tmp_path) == f"commit {head} +changes"


def test_the_table_gives_medians_ranges_and_the_change() -> None:
    runs: compare.Runs = {}
    for route in compare.ROUTES:
        runs["before", route] = [{"rps": 100.0, "cpu_us": 80.0}, {"rps": 120.0, "cpu_us": 60.0}]
        runs["after", route] = [{"rps": 132.0, "cpu_us": 63.0}]
    lines = compare.table(runs)
    assert lines[2].startswith(
        "| /predict | 110 req/s (100 to 120) | 132 req/s (132 to 132) | +20.0% "
    )
    assert lines[2].endswith("| 70.0 µs (60.0 to 80.0) | 63.0 µs (63.0 to 63.0) | -10.0% |")


def test_a_directory_that_is_not_a_checkout_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert compare.main(["--before", str(tmp_path)]) == 2
    assert "not a checkout of this repository" in capsys.readouterr().err


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is installed by `make system-deps`")
def test_a_short_comparison_of_this_checkout_with_itself(tmp_path: Path) -> None:
    model = build_model_dir("iris", tmp_path / "iris")
    out = tmp_path / "compare.md"
    args = ["--before", str(REPO_ROOT), "--model-uri", str(model), "--rounds", "1",
            "--duration", "1", "--warmup", "1", "--out", str(out)]  # fmt: skip
    assert compare.main(args) == 0
    page = out.read_text()
    for route in compare.ROUTES:
        row = next(line for line in page.splitlines() if line.startswith(f"| {route} |"))
        assert re.search(r"\| [\d,]+ req/s \([\d,]+ to [\d,]+\) \|", row), row
        assert re.search(r"\| [+-]\d+\.\d% \|$", row), row
