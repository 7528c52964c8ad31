"""The Docker CLI, in the few calls a rehearsal makes."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from typing import Any


class DockerError(RuntimeError):
    """A docker command failed; the message is docker's."""


def docker(*args: str, timeout: float = 120, check: bool = True) -> str:
    """Run `docker <args>` and return its stdout; DockerError on failure when check is set."""
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise DockerError(f"docker {' '.join(args[:2])}: {done.stderr.strip()}")
    return done.stdout.strip()


def image_exists(image: str) -> bool:
    return bool(docker("image", "inspect", "--format", "{{.Id}}", image, check=False))


def image_user(image: str) -> str:
    """The USER an image runs as (empty means root)."""
    return docker("image", "inspect", "--format", "{{.Config.User}}", image)


def inspect(container: str) -> dict[str, Any]:
    loaded = json.loads(docker("inspect", container))
    return dict(loaded[0])


def container_ip(container: str, network: str) -> str:
    info = inspect(container)
    return str(info["NetworkSettings"]["Networks"][network]["IPAddress"])


def state(container: str) -> dict[str, Any]:
    """Docker's State of a container: Status, ExitCode, OOMKilled, ..."""
    return dict(inspect(container)["State"])


def logs(container: str, tail: int = 40) -> str:
    done = subprocess.run(
        ["docker", "logs", "--tail", str(tail), container],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return (done.stdout + done.stderr).strip()


def run(args: Sequence[str]) -> str:
    """`docker run` with the given arguments; returns the container id."""
    return docker("run", *args, timeout=300)


def exec_code(container: str, command: tuple[str, ...], timeout: float) -> int:
    """Exit code of `docker exec` (the exec probe); 124 when it times out."""
    try:
        done = subprocess.run(
            ["docker", "exec", container, *command],
            capture_output=True,
            timeout=timeout + 5,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return 124
    return done.returncode


def stop(container: str, grace_seconds: int) -> None:
    docker("stop", "--time", str(grace_seconds), container, timeout=grace_seconds + 60, check=False)


def remove(*containers: str) -> None:
    if containers:
        docker("rm", "--force", "--volumes", *containers, timeout=120, check=False)


def wait(container: str, timeout: float) -> int | None:
    """The container's exit code, or None if it is still running after timeout seconds."""
    try:
        return int(docker("wait", container, timeout=timeout))
    except subprocess.TimeoutExpired:
        return None
