"""docs/README.md, the index the README links to, lists every documentation page."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
INDEX = DOCS / "README.md"
# Result files that commands write (docs/results/) are cited by the pages, not listed.
NOT_PAGES = {INDEX}

pytestmark = pytest.mark.unit


def test_every_docs_page_is_in_the_index() -> None:
    linked = {
        (DOCS / target.partition("#")[0]).resolve()
        for target in re.findall(r"\]\(([^)\s]+)\)", INDEX.read_text())
    }
    pages = {
        page.resolve()
        for page in DOCS.rglob("*.md")
        if page not in NOT_PAGES and "results" not in page.relative_to(DOCS).parts
    }
    missing = sorted(str(page.relative_to(ROOT)) for page in pages - linked)
    assert not missing, f"docs/README.md does not list {missing}"
