"""The images a rehearsal can run, built here: the API (`make image`), MLflow at the version the
chart pins, and Prometheus from Debian's package for the standalone monitoring mode.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

from rehearsal import docker
from rehearsal.manifests import CHART, ROOT

LOCAL_BASE_IMAGE = "mlops-platform/debian-python:bookworm"
MLFLOW_DOCKERFILE = ROOT / "deploy" / "compose" / "mlflow.Dockerfile"
PROMETHEUS_DOCKERFILE = Path(__file__).with_name("prometheus.Dockerfile")
MLFLOW_REPOSITORY = "mlops-platform/mlflow"
PROMETHEUS_IMAGE = "mlops-platform/prometheus:debian-trixie"


class BuildError(RuntimeError):
    """An image could not be built; the message ends with the build's last lines."""


@dataclass(frozen=True)
class Images:
    """Local image references and the `--set` values that point the chart at them."""

    api: str
    mlflow: str
    prometheus: str
    mlflow_version: str
    prometheus_version: str

    def sets(self) -> list[str]:
        api_repo, api_tag = self.api.rsplit(":", 1)
        mlflow_repo, mlflow_tag = self.mlflow.rsplit(":", 1)
        prom_repo, prom_tag = self.prometheus.rsplit(":", 1)
        return [
            f"api.image.repository={api_repo}",
            f"api.image.tag={api_tag}",
            f"mlflow.image.repository={mlflow_repo}",
            f"mlflow.image.tag={mlflow_tag}",
            f"monitoring.prometheus.image.repository={prom_repo}",
            f"monitoring.prometheus.image.tag={prom_tag}",
        ]


def locked_version(package: str) -> str:
    """The version uv.lock pins for a package."""
    text = (ROOT / "uv.lock").read_text()
    match = re.search(rf'\nname = "{re.escape(package)}"\nversion = "([^"]+)"', text)
    if match is None:
        raise BuildError(f"{package} is not in uv.lock")
    return match.group(1)


def chart_mlflow_tag(values: list[Path]) -> str:
    """The MLflow image tag the chart pins, as the environment's values files leave it."""
    tag = None
    for path in [CHART / "values.yaml", *values]:
        loaded = yaml.safe_load(path.read_text()) or {}
        tag = ((loaded.get("mlflow") or {}).get("image") or {}).get("tag", tag)
    if not tag:
        raise BuildError("the chart pins no mlflow.image.tag")
    return str(tag)


def _build(tag: str, log: Path, *args: str) -> None:
    with log.open("w") as out:
        done = subprocess.run(
            ["nice", "-n", "10", "docker", "build", "--tag", tag, *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=1800,
            check=False,
        )
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise BuildError(f"docker build {tag} failed ({log}):\n{tail}")


def api_image(image: str, log: Path) -> str:
    """The API image as `make image` builds it (a no-op when its layers are cached)."""
    with log.open("w") as out:
        done = subprocess.run(
            ["nice", "-n", "10", "make", "--no-print-directory", "image", f"IMAGE={image}"],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=1800,
            check=False,
            env={**os.environ},
        )
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise BuildError(f"make image failed ({log}):\n{tail}")
    return image


def mlflow_image(version: str, log: Path) -> str:
    """The platform's MLflow image at `version` on the local base."""
    tag = f"{MLFLOW_REPOSITORY}:{version}"
    _build(
        tag,
        log,
        "--build-arg",
        f"BASE_IMAGE={LOCAL_BASE_IMAGE}",
        "--build-arg",
        f"MLFLOW_VERSION={version}",
        "--file",
        str(MLFLOW_DOCKERFILE),
        str(MLFLOW_DOCKERFILE.parent),
    )
    return tag


def prometheus_image(log: Path) -> tuple[str, str]:
    """Debian's prometheus on the local base; (image, the version it reports)."""
    _build(
        PROMETHEUS_IMAGE,
        log,
        "--build-arg",
        f"BASE_IMAGE={LOCAL_BASE_IMAGE}",
        "--file",
        str(PROMETHEUS_DOCKERFILE),
        str(PROMETHEUS_DOCKERFILE.parent),
    )
    version = docker.docker(
        "run", "--rm", "--entrypoint", "/usr/bin/prometheus", PROMETHEUS_IMAGE, "--version"
    )
    match = re.search(r"version (\S+)", version)
    return PROMETHEUS_IMAGE, match.group(1) if match else "unknown"
