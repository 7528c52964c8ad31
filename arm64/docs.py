"""`python -m arm64 docs`: copy the latest result tables into docs/architectures.md.

Each table lives between `<!-- BEGIN name -->` and `<!-- END name -->` lines and is replaced
whole by the Markdown file a command wrote, so no figure on the page is typed by hand. A block
whose result file is absent is left as it is.
"""

import argparse
import re
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
PAGE = REPO_ROOT / "docs" / "architectures.md"


def sources(work: Path, native: Path | None) -> dict[str, Path]:
    """Block name -> the result file that fills it; native ones come from the arm64 CI job."""
    native = native or work / "native"
    return {
        "verify-arm64": work / "verify-arm64.md",
        "arm64-native-check": native / "check-native.md",
        "arm64-native-bench": native / "bench-native.md",
    }


class MissingBlock(ValueError):
    """The page has no BEGIN/END pair for a block."""


def block_pattern(name: str) -> re.Pattern[str]:
    return re.compile(
        rf"(^<!-- BEGIN {re.escape(name)} .*?-->\n)(.*?)(^<!-- END {re.escape(name)} -->$)",
        re.DOTALL | re.MULTILINE,
    )


def replace_block(page: str, name: str, content: str) -> str:
    """`page` with block `name` holding `content` (and nothing else)."""
    pattern = block_pattern(name)
    if not pattern.search(page):
        raise MissingBlock(f"no '<!-- BEGIN {name} ... -->' ... '<!-- END {name} -->' block")
    body = content if content.endswith("\n") else content + "\n"
    return pattern.sub(lambda match: match.group(1) + body + match.group(3), page, count=1)


def block_content(page: str, name: str) -> str:
    match = block_pattern(name).search(page)
    if match is None:
        raise MissingBlock(name)
    return match.group(2)


def update(page_path: Path, sources: dict[str, Path]) -> list[str]:
    """Rewrite the blocks whose result files exist; returns the names rewritten."""
    page = page_path.read_text()
    written = []
    for name, source in sources.items():
        if source.is_file():
            page = replace_block(page, name, source.read_text())
            written.append(name)
    page_path.write_text(page)
    return written


def run(args: argparse.Namespace) -> int:
    files = sources(args.work, args.native)
    written = update(args.page, files)
    for name, source in files.items():
        print(f"{name}: {'written' if name in written else f'kept (no {source})'}")
    return 0


def add_commands(commands: Any) -> None:
    sub = commands.add_parser("docs", help="write the latest result tables into the docs page")
    sub.add_argument("--page", type=Path, default=PAGE)
    sub.add_argument(
        "--native",
        type=Path,
        default=None,
        help="the arm64 CI job's downloaded result directory (default WORK/native)",
    )
    sub.set_defaults(run=run)
