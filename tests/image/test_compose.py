"""The local Compose stack: the file parses, and its API starts against its locally built MLflow.

Prometheus and Grafana come from a registry this machine cannot reach, so only MLflow and the API
are started: a model is trained into that MLflow from the host, and the API must serve it from
the registry (not from its baked fallback).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.image.conftest import (
    LOCAL_BASE_IMAGE,
    LOG_DIR,
    REPO_ROOT,
    http_get,
)

pytestmark = [pytest.mark.image, pytest.mark.timeout(1800)]

COMPOSE_FILE = REPO_ROOT / "deploy" / "compose" / "compose.yaml"
PROJECT = "mlops-image-test"
STARTUP_TIMEOUT_SECONDS = 180


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def compose(docker_engine: None) -> list[str]:
    """The Compose command, with Debian's docker-compose installed when none works."""
    subprocess.run(
        [str(REPO_ROOT / "scripts" / "docker-engine.sh"), "--compose"], check=True, timeout=600
    )
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        command = ["docker", "compose"]
    else:
        command = [shutil.which("docker-compose") or "docker-compose"]
    return [*command, "--project-name", PROJECT, "--file", str(COMPOSE_FILE)]


def test_compose_file_parses(compose: list[str]) -> None:
    result = subprocess.run([*compose, "config", "--services"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == {"mlflow", "api", "prometheus", "grafana"}


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool missing (make system-deps)")
def test_prometheus_config_is_valid_and_uses_the_chart_job_name() -> None:
    config = COMPOSE_FILE.parent / "prometheus.yml"
    result = subprocess.run(
        ["promtool", "check", "config", str(config)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rules = REPO_ROOT / "charts/platform/charts/monitoring/files/rules"
    assert 'job="model-platform-api"' in "".join(p.read_text() for p in rules.glob("*.yaml"))
    assert "job_name: model-platform-api" in config.read_text()


def test_monitoring_images_are_the_charts() -> None:
    values = (REPO_ROOT / "charts/platform/values.yaml").read_text()
    compose = COMPOSE_FILE.read_text()
    for component in ("prometheus", "grafana"):
        image = re.search(rf"image: (\S*/{component}):(\S+)", compose)
        assert image is not None, component
        assert f"repository: {image.group(1)}" in values
        assert f"tag: {image.group(2)}" in values


def test_mlflow_image_pins_the_locked_mlflow() -> None:
    locked = re.search(r'name = "mlflow"\nversion = "([^"]+)"', (REPO_ROOT / "uv.lock").read_text())
    assert locked is not None
    assert f"MLFLOW_VERSION:-{locked.group(1)}" in COMPOSE_FILE.read_text()


@pytest.fixture
def stack(compose: list[str], image: str) -> Iterator[dict[str, str]]:
    """MLflow and the API from the Compose file, on free loopback ports; removed afterwards."""
    env = {
        **os.environ,
        "BASE_IMAGE": os.environ.get("BASE_IMAGE", LOCAL_BASE_IMAGE),
        "IMAGE": image,
        "MLFLOW_PORT": str(free_port()),
        "API_PORT": str(free_port()),
    }
    log = (LOG_DIR / "compose.log").open("w")
    try:
        subprocess.run(
            [*compose, "up", "--detach", "--build", "mlflow"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=True,
            timeout=1200,
        )
        yield env
    finally:
        subprocess.run([*compose, "logs", "--no-color"], env=env, stdout=log, stderr=log)
        subprocess.run([*compose, "down", "--volumes"], env=env, stdout=log, stderr=log)
        log.close()


def wait_for(url: str, timeout: float = STARTUP_TIMEOUT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if http_get(url, timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(1)
    raise AssertionError(f"{url} did not answer 200 within {timeout}s (see {LOG_DIR}/compose.log)")


def test_api_service_serves_a_model_from_the_compose_mlflow(
    compose: list[str], stack: dict[str, str]
) -> None:
    mlflow_url = f"http://127.0.0.1:{stack['MLFLOW_PORT']}"
    wait_for(f"{mlflow_url}/health")
    trained = subprocess.run(
        [str(REPO_ROOT / ".venv" / "bin" / "python"), "-m", "training"],
        cwd=REPO_ROOT,
        env={**stack, "MLFLOW_TRACKING_URI": mlflow_url},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]

    subprocess.run(
        [*compose, "up", "--detach", "--no-build", "api"],
        env=stack,
        capture_output=True,
        check=True,
        timeout=300,
    )
    api_url = f"http://127.0.0.1:{stack['API_PORT']}"
    wait_for(f"{api_url}/ready")
    with urllib.request.urlopen(f"{api_url}/metrics", timeout=5) as response:
        metrics = response.read().decode()
    model_info = [line for line in metrics.splitlines() if line.startswith("model_info{")]
    assert any('source="registry"' in line for line in model_info), model_info
