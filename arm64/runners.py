"""Where the code under test runs: natively on this machine, or in the emulated arm64 root.

A runner turns "python ARGS with ENV" into a command line. The native one runs this
environment's interpreter; the emulated one runs the root's interpreter through
scripts/arm64-run.sh, which sees the repository at /repo and the work directory at /work.
Either way the command dies with its caller (PR_SET_PDEATHSIG), so nothing outlives a check.
"""

import json
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = REPO_ROOT / "scripts"
BINFMT_HANDLER = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
BUILD_TIMEOUT_SECONDS = 3600


class PrerequisiteMissing(RuntimeError):
    """This machine lacks something emulation needs; the message says what to install."""


@dataclass(frozen=True)
class Native:
    """This machine's own architecture and this environment's interpreter."""

    work: Path

    @property
    def label(self) -> str:
        return f"{platform.machine()}, native"

    @property
    def emulated(self) -> bool:
        return False

    def path(self, local: Path) -> str:
        """How the command sees a file of the repository or the work directory."""
        return str(local)

    def python(
        self, args: Sequence[str], env: Mapping[str, str]
    ) -> tuple[list[str], dict[str, str]]:
        """The command line and environment that run `python ARGS`."""
        command = ["setpriv", "--pdeathsig", "KILL", sys.executable, *args]
        return command, {**os.environ, **env, "PYTHONPATH": str(REPO_ROOT)}


@dataclass(frozen=True)
class Emulated:
    """The arm64 root built by scripts/build-arm64-root.sh, run under qemu user-mode emulation."""

    root: Path
    interpreter: str  # the runtime environment's python, as a path inside the root
    work: Path
    qemu: str
    prepared_seconds: float = 0.0  # building (or finding) the root and its environment
    # What building each took, when it was built ({"root": ..., "runtime": ...}).
    records: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"aarch64, emulated by {self.qemu}"

    @property
    def emulated(self) -> bool:
        return True

    def path(self, local: Path) -> str:
        for outside, inside in ((self.work, "/work"), (REPO_ROOT, "/repo")):
            if local == outside or outside in local.parents:
                return str(inside / local.relative_to(outside))
        raise ValueError(f"{local} is neither in the repository nor in the work directory")

    def python(
        self, args: Sequence[str], env: Mapping[str, str]
    ) -> tuple[list[str], dict[str, str]]:
        assignments = {**env, "PYTHONPATH": "/repo", "PYTHONDONTWRITEBYTECODE": "1"}
        command = [
            str(SCRIPTS / "arm64-run.sh"),
            "--bind",
            f"{REPO_ROOT}:/repo:ro",
            "--bind",
            f"{self.work}:/work:ro",
            *[part for name, value in assignments.items() for part in ("--env", f"{name}={value}")],
            str(self.root),
            "--",
            self.interpreter,
            *args,
        ]
        return command, dict(os.environ)


def qemu_version() -> str:
    """ "qemu-aarch64 7.2.22" for the registered handler, or what could be read of it."""
    try:
        interpreter = BINFMT_HANDLER.read_text().split("interpreter ", 1)[1].split()[0]
        # Debian registers a name (aarch64-binfmt-P) under which qemu reads its arguments the
        # binfmt way; the file it links to answers --version.
        interpreter = os.path.realpath(interpreter)
        first = subprocess.run(
            [interpreter, "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "qemu-aarch64 (version unknown)"
    match = re.search(r"version (\S+)", first)
    return f"qemu-aarch64 {match.group(1)}" if match else first.strip()


def check_prerequisites() -> None:
    """Raise PrerequisiteMissing, saying what to install, when emulation cannot run here."""
    problems = []
    missing = [tool for tool in ("unshare", "setpriv", "chroot", "flock") if not _which(tool)]
    if missing:
        problems.append(f"missing {', '.join(missing)}: apt-get install util-linux coreutils")
    if os.geteuid() != 0 and not _sudo_works():
        problems.append("chroot and mounts need root: run as root, or with passwordless sudo")
    done = subprocess.run(
        [str(SCRIPTS / "arm64-emulation.sh"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        problems.append(done.stderr.strip())
    if problems:
        raise PrerequisiteMissing("\n".join(problems))


def _which(tool: str) -> bool:
    return any(
        (Path(directory) / tool).is_file()
        for directory in [*os.environ.get("PATH", "").split(os.pathsep), "/usr/sbin", "/sbin"]
    )


def _sudo_works() -> bool:
    try:
        return (
            subprocess.run(["sudo", "-n", "true"], capture_output=True, timeout=10).returncode == 0
        )
    except (OSError, subprocess.SubprocessError):
        return False


def build_root(requirements: Path, work: Path) -> Emulated:
    """The cached arm64 root with `requirements` installed (built on first use; minutes)."""
    check_prerequisites()
    started = time.monotonic()
    done = subprocess.run(
        [str(SCRIPTS / "build-arm64-root.sh"), str(requirements)],
        stdout=subprocess.PIPE,
        stderr=None,  # the build reports its progress on stderr, straight to the user
        text=True,
        timeout=BUILD_TIMEOUT_SECONDS,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"scripts/build-arm64-root.sh failed with status {done.returncode}")
    values = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    root, interpreter = Path(values["ROOT"]), values["PYTHON"]
    return Emulated(
        root,
        interpreter,
        work,
        qemu_version(),
        round(time.monotonic() - started, 1),
        build_records(root, interpreter),
    )


def build_records(root: Path, interpreter: str) -> dict[str, Any]:
    """The completion marks scripts/build-arm64-root.sh wrote: seconds, date, load average."""

    def read(mark: Path) -> Any:
        try:
            return json.loads(mark.read_text())
        except (OSError, ValueError):
            return None  # built before marks held anything

    environment = Path(interpreter).parent.parent.name  # /opt/runtime/<hash>/bin/python
    return {
        "root": read(root.parent / "rootfs.done"),
        "runtime": read(root.parent / f"runtime-{environment}.done"),
    }


def process_roots() -> list[tuple[str, str]]:
    """(pid, root directory) of every process; through sudo when other users' are unreadable."""
    if os.geteuid() == 0:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    found.append((entry.name, os.readlink(entry / "root")))
                except OSError:
                    continue
        return found
    listing = subprocess.run(
        [
            "sudo",
            "-n",
            "sh",
            "-c",
            'for p in /proc/[0-9]*; do r=$(readlink "$p/root") && echo "${p#/proc/} $r"; done',
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    ).stdout
    return [(pid, root) for pid, _, root in (line.partition(" ") for line in listing.splitlines())]


def leftovers(root: Path) -> list[str]:
    """Processes still running in `root` and mounts still under it, as seen from here."""
    prefix = str(root)

    def inside(path: str) -> bool:
        return path == prefix or path.startswith(prefix + "/")

    found = [f"process {pid} runs in {path}" for pid, path in process_roots() if inside(path)]
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        if inside(line.split()[4]):
            found.append(f"mount {line.split()[4]}")
    return found
