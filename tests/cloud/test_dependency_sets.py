"""The AWS libraries stay out of the server's runtime set, which is all the image installs."""

from __future__ import annotations

import shutil
import subprocess
import tomllib

from tests.processes import REPO_ROOT

AWS_PACKAGES = {"boto3", "botocore", "s3transfer", "moto"}


def _uv() -> str:
    found = shutil.which("uv") or str(REPO_ROOT / ".tools" / "uv" / "bin" / "uv")
    return found


def test_the_runtime_set_has_no_aws_library() -> None:
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert "boto3>=1.40" in pyproject["dependency-groups"]["aws"]
    # What the Dockerfile's `uv sync --no-dev --no-default-groups` installs, transitively.
    exported = subprocess.run(
        [_uv(), "export", "--frozen", "--no-dev", "--no-default-groups", "--no-emit-project",
         "--no-hashes", "--quiet"],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    names = {line.split("==")[0] for line in exported.splitlines() if "==" in line}
    assert "onnxruntime" in names
    assert not names & AWS_PACKAGES


def test_the_image_installs_only_the_runtime_set() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "uv sync --frozen --no-dev --no-default-groups --no-install-project" in dockerfile
