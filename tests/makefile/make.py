"""Running the Makefile the way a reader would, in a clean environment."""

import os
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# Variables the Makefile reads; a developer's shell may export some of them.
MAKE_VARIABLES = (
    "DATASET", "MODEL", "ALIAS", "VERSION", "MODEL_URI", "HOST", "PORT", "FORCE", "ARGS",
    "N_ESTIMATORS", "MAX_DEPTH", "RANDOM_STATE", "TEST_SIZE", "MAKEFLAGS", "MFLAGS", "NO_COLOR",
)  # fmt: skip


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in MAKE_VARIABLES}
    return {**env, **extra}


def make(
    *args: str, cwd: Path = REPO_ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=cwd,
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def dry_run(*args: str) -> list[str]:
    """The commands `make -n` would run (prerequisites included), one per line."""
    result = make("-n", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def command_of(lines: list[str], program: str) -> str:
    """The one command line that runs `program` (e.g. `-m server`)."""
    found = [line for line in lines if program in line]
    assert len(found) == 1, lines
    return found[0]


def on_a_terminal(
    *args: str, cwd: Path = REPO_ROOT, env: dict[str, str] | None = None, answer: bytes = b""
) -> tuple[int, str]:
    """Run make with a terminal as its input and output; type `answer`; return status, output."""
    leader, follower = os.openpty()
    process = subprocess.Popen(
        ["make", "--no-print-directory", *args],
        cwd=cwd,
        env=env or clean_env(TERM="xterm-256color"),
        stdin=follower,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)  # read while it writes: a terminal's buffer is small
    if answer:
        os.write(leader, answer)
    chunks = []
    try:
        while chunk := os.read(leader, 65536):
            chunks.append(chunk)
    except OSError:  # EIO: the terminal's other end is closed, all is read
        pass
    finally:
        os.close(leader)
    return process.wait(60), b"".join(chunks).decode()
