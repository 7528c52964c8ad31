"""Without what emulation needs, `python -m arm64 verify` stops at once and says what to install."""

import os
import subprocess
import sys
from pathlib import Path

from tests.processes import REPO_ROOT


def verify(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "arm64", "--work", str(tmp_path / "work"), "verify"],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_no_aarch64_handler_names_the_mount_and_the_handler(tmp_path: Path) -> None:
    done = verify(tmp_path, BINFMT_DIR=str(tmp_path / "binfmt_misc"))
    assert done.returncode == 3, done.stdout + done.stderr
    assert "arm64 emulation cannot run here" in done.stderr
    assert f"mount -t binfmt_misc binfmt_misc {tmp_path / 'binfmt_misc'}" in done.stderr
    assert "update-binfmts --enable qemu-aarch64" in done.stderr
    assert "make arm64-emulation" in done.stderr
    assert not (tmp_path / "work").exists(), "nothing is built before the check"


def test_no_debootstrap_names_the_package(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # Every tool the check uses, except debootstrap.
    tools = ("bash", "grep", "sort", "sed", "head", "tail", "id", "cat", "env", "dirname")
    for tool in (*tools, "unshare", "setpriv", "chroot", "flock"):
        found = subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True, text=True)
        (bin_dir / tool).symlink_to(found.stdout.strip())
    done = verify(tmp_path, PATH=str(bin_dir))
    assert done.returncode == 3, done.stdout + done.stderr
    # Other packages are named too when the qemu-aarch64 handler is not enabled yet (their
    # commands are off this PATH): debootstrap must be among them, in the list and the command.
    [line] = [x for x in done.stderr.splitlines() if "missing Debian packages:" in x]
    named, command = line.split("missing Debian packages: ")[1].split(" (apt-get install ")
    assert "debootstrap" in named.split()
    assert "debootstrap" in command.rstrip(")").split()
