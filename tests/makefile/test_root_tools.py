"""`make test` needs root only to install missing tools or start Docker, and says so first.

The scripts run with a PATH of our making, so that "a tool is present" or "missing" does not
depend on this machine: present tools are empty stand-ins (the scripts only look for them) and
apt-get, where it must not really run, records its arguments.
"""

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.makefile.make import REPO_ROOT, dry_run

BASICS = ("bash", "env", "id", "sort", "cat", "grep", "setsid", "sleep", "date", "tail", "seq")
# initdb stands in for PostgreSQL: where Debian's package is installed (its bin is off PATH) the
# script finds it anyway, so every toolbox here has it on PATH and the answers are the same.
IS_ROOT = os.geteuid() == 0


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A directory the user without root can read too (pytest's own is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="root-tools-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def toolbox(tmp_path: Path, present: tuple[str, ...], fakes: dict[str, str]) -> Path:
    """A bin directory: the basics linked from this machine, stand-ins, and `fakes` scripts."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in BASICS:
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    for tool in present:
        fakes.setdefault(tool, "exit 0")
    for tool, body in fakes.items():
        path = bin_dir / tool
        path.write_text(f"#!/bin/bash\n{body}\n")
        path.chmod(0o755)
    return bin_dir


def run_script(
    script: str, bin_dir: Path, *args: str, as_root: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run one of scripts/ with only `bin_dir` on PATH, as a user without root unless asked."""
    command = ["/usr/bin/env", "-i", f"PATH={bin_dir}", "bash", str(REPO_ROOT / "scripts" / script)]
    if IS_ROOT and not as_root:
        command = ["runuser", "-u", "nobody", "--", *command]
    return subprocess.run(
        [*command, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=30,
        check=False,
    )


APT_GET = 'echo "apt-get $*" >&2'
TOOLS = ("promtool", "prometheus", "wrk", "hey", "h2load", "node", "npm", "initdb")


def test_with_every_tool_present_no_root_is_needed(tmp_path: Path) -> None:
    bin_dir = toolbox(tmp_path, TOOLS, {"apt-get": APT_GET})
    result = run_script("install-system-deps.sh", bin_dir)
    assert (result.returncode, result.stdout) == (0, "")


def test_a_missing_tool_without_root_says_what_to_run(tmp_path: Path) -> None:
    bin_dir = toolbox(
        tmp_path,
        ("promtool", "prometheus", "hey", "h2load", "node", "npm", "initdb"),
        {"apt-get": APT_GET},
    )
    result = run_script("install-system-deps.sh", bin_dir)
    assert result.returncode == 1
    assert result.stdout == (
        "error: the tests need wrk (Debian packages: wrk); installing them with apt-get needs "
        "root, and this user is not root and has no sudo; run `make system-deps` as root once "
        "(or install wrk yourself); nothing was installed\n"
    )


@pytest.mark.skipif(not IS_ROOT, reason="the root path needs root to run (CI runners: sudo)")
def test_as_root_it_says_so_before_running_apt_get(tmp_path: Path) -> None:
    present = ("wrk", "hey", "h2load", "node", "npm", "initdb")
    bin_dir = toolbox(tmp_path, present, {"apt-get": APT_GET})
    result = run_script("install-system-deps.sh", bin_dir, as_root=True)
    assert result.returncode == 0, result.stdout
    assert result.stdout.splitlines() == [
        "system-deps: the tests need prometheus promtool (Debian packages: prometheus); "
        "installing them with apt-get needs root: running apt-get as root",
        "apt-get update -qq",
        "apt-get install -y -qq --no-install-recommends prometheus",
        "system-deps: installed prometheus",
    ]


def test_docker_without_root_fails_at_once_saying_why(tmp_path: Path) -> None:
    """No engine answers and this user cannot start one: one line, no apt-get, no waiting."""
    bin_dir = toolbox(tmp_path, ("debootstrap",), {"docker": "exit 1", "apt-get": APT_GET})
    result = run_script("docker-engine.sh", bin_dir)
    assert result.returncode == 1
    assert result.stdout == (
        "docker-engine: no Docker engine answers, and installing or starting one needs root: "
        "run `sudo make docker-engine` (or start Docker yourself)\n"
    )
    check = run_script("docker-engine.sh", bin_dir, "--check")
    assert check.returncode == 0
    assert check.stdout.startswith("docker: no engine answers and starting one needs root; ")


def test_docker_that_answers_needs_no_root(tmp_path: Path) -> None:
    """An engine that answers is all the image tests need, even without debootstrap."""
    bin_dir = toolbox(tmp_path, (), {"docker": "exit 0", "apt-get": APT_GET})
    result = run_script("docker-engine.sh", bin_dir)
    assert result.returncode == 0, result.stdout
    assert "apt-get" not in result.stdout
    check = run_script("docker-engine.sh", bin_dir, "--check")
    assert check.stdout == "docker: the engine answers; the image tests will use it\n"


def test_make_test_reports_what_needs_root_before_the_tests_run() -> None:
    lines = dry_run("test")
    pytest_at = next(i for i, line in enumerate(lines) if "-m pytest" in line)
    before = "\n".join(lines[:pytest_at])
    assert "scripts/install-system-deps.sh" in before
    assert "scripts/docker-engine.sh --check" in before
    assert "scripts/arm64-emulation.sh --check" in before
