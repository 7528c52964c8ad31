"""Fixtures for the image tests: a Docker engine, the images `make image` and `make image-training`
build, and a container.

The session builds what it needs from a fresh clone: `make image` installs and starts Docker when
missing, builds the cached debootstrap base, trains and exports the fallback model when
build/model is missing, and builds the image (layer-cached on the same machine). The tests skip
only when no Docker engine can be started at all; IMAGE_TESTS_REQUIRE_DOCKER=1 (set by .ci/run)
turns that skip into a failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import testinfra
from testinfra.host import Host

REPO_ROOT = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("IMAGE", "mlops-model-server:dev")
TRAINING_IMAGE = os.environ.get("TRAINING_IMAGE", "mlops-model-server/training:dev")
LOCAL_BASE_IMAGE = "mlops-platform/debian-python:bookworm"
LOG_DIR = Path(os.environ.get("IMAGE_TEST_LOG_DIR", "/tmp/image-tests"))
APP_UID = 10001
READY_TIMEOUT_SECONDS = 90
# Nothing listens on port 9 inside the container: the registry is unreachable at once, so the
# server must serve the model baked in at /opt/model.
UNREACHABLE_REGISTRY = "http://127.0.0.1:9"


@dataclass(frozen=True)
class Container:
    """A running container of the image and the host port its 8000 is published on."""

    id: str
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def docker(*args: str, check: bool = True, timeout: float = 120) -> str:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def http_get(url: str, timeout: float = 5) -> tuple[int, Any]:
    """GET a JSON route; returns the status and the decoded body (None when not JSON)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, _decode(response.read())
    except urllib.error.HTTPError as error:
        return error.code, _decode(error.read())


def http_post_json(url: str, body: Any, timeout: float = 5) -> tuple[int, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, _decode(response.read())
    except urllib.error.HTTPError as error:
        return error.code, _decode(error.read())


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """A Docker engine that answers, started by scripts/docker-engine.sh when needed."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = LOG_DIR / "docker-engine.log"
    with log.open("w") as out:
        result = subprocess.run(
            [str(REPO_ROOT / "scripts" / "docker-engine.sh")],
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=600,
            check=False,
        )
    if result.returncode != 0:
        reason = f"Docker cannot be started on this machine ({log}):\n{_tail(log)}"
        if os.environ.get("IMAGE_TESTS_REQUIRE_DOCKER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)


def _make_image(target: str, variable: str, tag: str) -> str:
    """`make <target> <variable>=<tag>`, its log in LOG_DIR/make-<target>.log; the tag."""
    log = LOG_DIR / f"make-{target}.log"
    started = time.monotonic()
    with log.open("w") as out:
        result = subprocess.run(
            ["make", "--no-print-directory", target, f"{variable}={tag}"],
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=1800,
            check=False,
        )
    assert result.returncode == 0, f"make {target} failed ({log}):\n{_tail(log)}"
    print(f"make {target} took {time.monotonic() - started:.0f}s")
    return tag


@pytest.fixture(scope="session")
def image(docker_engine: None) -> str:
    """The image as `make image` builds it."""
    return _make_image("image", "IMAGE", IMAGE)


@pytest.fixture(scope="session")
def training_image(docker_engine: None) -> str:
    """The training image as `make image-training` builds it."""
    return _make_image("image-training", "TRAINING_IMAGE", TRAINING_IMAGE)


def run_container(image: str, *extra: str) -> Container:
    """Starts the image hardened as production runs it, against an unreachable registry."""
    container_id = docker(
        "run",
        "--detach",
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--publish",
        "127.0.0.1::8000",
        "--env",
        f"MLFLOW_TRACKING_URI={UNREACHABLE_REGISTRY}",
        "--env",
        "MODEL_POLL_SECONDS=0",
        *extra,
        image,
    )
    mapping = docker("port", container_id, "8000/tcp").splitlines()[0]
    return Container(id=container_id, port=int(mapping.rsplit(":", 1)[1]))


def wait_until_ready(container: Container) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            status, _ = http_get(f"{container.url}/ready", timeout=2)
            if status == 200:
                return
        except OSError:
            pass
        state = docker("inspect", "-f", "{{ .State.Status }}", container.id)
        if state != "running":
            break
        time.sleep(0.5)
    logs = docker("logs", "--tail", "60", container.id, check=False)
    raise AssertionError(f"container {container.id[:12]} never became ready:\n{logs}")


def remove_container(container: Container) -> None:
    (LOG_DIR / f"container-{container.id[:12]}.log").write_text(
        docker("logs", container.id, check=False)
    )
    docker("rm", "--force", container.id, check=False)


@pytest.fixture(scope="session")
def container(image: str) -> Iterator[Container]:
    """One long-lived container, ready, shared by the read-only checks."""
    started = run_container(image)
    try:
        wait_until_ready(started)
        yield started
    finally:
        remove_container(started)


@pytest.fixture(scope="session")
def host(container: Container) -> Host:
    """testinfra's view of the running container (docker exec, as the image's user)."""
    return testinfra.get_host(f"docker://{container.id}")


@pytest.fixture(scope="session")
def model_metadata(host: Host) -> dict[str, Any]:
    metadata: dict[str, Any] = json.loads(host.file("/opt/model/metadata.json").content_string)
    return metadata
