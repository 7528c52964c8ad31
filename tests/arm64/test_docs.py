"""The docs page's figures are written by commands: the blocks and their replacement."""

from pathlib import Path

import pytest

from arm64 import docs

PAGE = """# Title
<!-- BEGIN verify-arm64 (written by `make arm64-docs`) -->
old table
<!-- END verify-arm64 -->
text after
"""


def test_a_block_is_replaced_whole_and_nothing_else_changes() -> None:
    page = docs.replace_block(PAGE, "verify-arm64", "| new | table |")
    assert docs.block_content(page, "verify-arm64") == "| new | table |\n"
    assert page.startswith("# Title\n<!-- BEGIN verify-arm64 (written by `make arm64-docs`) -->\n")
    assert page.endswith("<!-- END verify-arm64 -->\ntext after\n")
    assert docs.replace_block(page, "verify-arm64", "old table") == PAGE


def test_a_page_without_the_block_is_refused() -> None:
    with pytest.raises(docs.MissingBlock):
        docs.replace_block("# Title\n", "verify-arm64", "x")


def test_update_writes_only_the_blocks_whose_results_exist(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        PAGE + "<!-- BEGIN arm64-native-bench x -->\nkept\n<!-- END arm64-native-bench -->\n"
    )
    result = tmp_path / "verify-arm64.md"
    result.write_text("fresh\n")
    written = docs.update(
        page, {"verify-arm64": result, "arm64-native-bench": tmp_path / "none.md"}
    )
    assert written == ["verify-arm64"]
    text = page.read_text()
    assert docs.block_content(text, "verify-arm64") == "fresh\n"
    assert docs.block_content(text, "arm64-native-bench") == "kept\n"


def test_the_architectures_page_has_every_generated_block() -> None:
    page = docs.PAGE.read_text()
    for name in docs.sources(Path("build/arm64"), None):
        docs.block_content(page, name)
