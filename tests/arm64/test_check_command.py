"""`python -m arm64 check` refuses, in one line, what cannot be a cross-architecture check."""

import json
import platform
import subprocess
import sys
from pathlib import Path

from tests.processes import REPO_ROOT


def check(reference: Path, work: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "arm64",
            "--work",
            str(work),
            "check",
            "--reference",
            str(reference),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_no_reference_bundle_says_how_to_get_one(tmp_path: Path) -> None:
    done = check(tmp_path / "missing", tmp_path)
    assert done.returncode == 2
    assert "no reference bundle" in done.stderr
    assert "make arm64-reference" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_reference_from_this_architecture_is_refused(tmp_path: Path) -> None:
    (tmp_path / "reference.json").write_text(json.dumps({"machine": platform.machine()}))
    done = check(tmp_path, tmp_path)
    assert done.returncode == 2
    assert f"made on {platform.machine()}, like this machine" in done.stderr
    assert not (tmp_path / "check-native.json").exists()
