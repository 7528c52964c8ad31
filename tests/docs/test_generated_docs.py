"""The reference pages that mirror code are generated, and never stale."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.unit


def test_generated_pages_are_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/generate_docs.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_a_stale_page_is_caught(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import generate_docs
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    page = next(iter(generate_docs.PAGES))
    original = page.read_text()
    try:
        page.write_text(original + "\nedited by hand\n")
        assert generate_docs.main(["--check"]) == 1
    finally:
        page.write_text(original)
    assert generate_docs.main(["--check"]) == 0
