"""`make help` groups the targets by task and colours them only on a terminal."""

import re

from tests.makefile.make import REPO_ROOT, clean_env, make, on_a_terminal

SECTIONS = [
    "Getting started",
    "Models",
    "Serving",
    "Container image",
    "Cluster (Helm chart)",
    "Tests and code quality",
    "Documentation",
    "Benchmarks",
    "AWS",
    "arm64",
    "Housekeeping",
]


def documented_targets() -> list[str]:
    text = (REPO_ROOT / "Makefile").read_text()
    return re.findall(r"^([a-zA-Z0-9_-]+):.*## ", text, flags=re.MULTILINE)


def phony_targets() -> set[str]:
    text = (REPO_ROOT / "Makefile").read_text()
    return {t for line in re.findall(r"^\.PHONY: (.+)$", text, re.MULTILINE) for t in line.split()}


def test_help_groups_every_target_once_under_its_task() -> None:
    result = make("help")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    headings = [line for line in lines if line and not line.startswith(" ")][1:]
    assert headings == [*SECTIONS, "Variables (defaults in brackets)"]
    listed = [line.split()[0] for line in lines if line.startswith("  ")]
    targets = documented_targets()
    assert sorted(listed[: len(targets)]) == sorted(targets)
    assert len(set(targets)) == len(targets)
    section_of = {}
    for line in lines:
        if line in SECTIONS:
            current = line
        elif line.startswith("  ") and current in SECTIONS:
            section_of[line.split()[0]] = current
    assert section_of["train"] == section_of["serve"] == "Getting started"
    assert section_of["promote"] == section_of["rollback"] == "Models"
    assert section_of["test"] == "Tests and code quality"
    assert section_of["chart-test"] == "Cluster (Helm chart)"
    assert section_of["clean-registry"] == "Housekeeping"


def test_every_phony_target_has_a_help_text() -> None:
    assert phony_targets() - set(documented_targets()) == set()


def test_help_lists_the_variables() -> None:
    lines = make("help").stdout.split("Variables (defaults in brackets)\n")[1].splitlines()
    names = [line.split()[0] for line in lines]
    for name in ("DATASET", "MODEL", "ALIAS", "VERSION", "MODEL_URI", "HOST", "PORT", "FORCE"):
        assert name in names


def test_no_colour_codes_when_not_on_a_terminal() -> None:
    assert "\033" not in make("help", env=clean_env(TERM="xterm-256color")).stdout


def test_colour_on_a_terminal_unless_no_color() -> None:
    status, output = on_a_terminal("help")
    assert status == 0
    assert "\033[36mtrain" in output
    status, output = on_a_terminal("help", env=clean_env(TERM="xterm-256color", NO_COLOR="1"))
    assert "\033" not in output
