"""Fixtures for the rehearsal tests: the Docker engine and chart tools the image and chart tests use."""

from __future__ import annotations

import subprocess

import pytest

from tests.image.conftest import REPO_ROOT, docker_engine

__all__ = ["docker_engine"]


@pytest.fixture(scope="session")
def chart_tools() -> None:
    subprocess.run([str(REPO_ROOT / "scripts" / "install-chart-tools.sh")], check=True)
