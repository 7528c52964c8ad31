"""`make rehearse` for each environment: the rendered chart run in Docker, as rendered.

Slow (minutes per environment: MLflow's start, a training run), so it has its own marker. It
reuses the API image the image tests build (IMAGE, default mlops-model-server:dev) and the cached
MLflow and Prometheus images; the output, one line per workload and check, is printed on failure.
Production (API keys, MLflow auth, operator mode) and staging (standalone Prometheus, an alias)
run here; the defaults, close to staging, run with `make rehearse`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.image.conftest import IMAGE, LOG_DIR, REPO_ROOT

pytestmark = [pytest.mark.rehearsal, pytest.mark.timeout(2400)]


@pytest.mark.parametrize("env", ["production", "staging"])
def test_the_rendered_release_runs_as_rendered(
    env: str, docker_engine: None, chart_tools: None, tmp_path: Path
) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rehearsal",
            "--env",
            env,
            "--image",
            IMAGE,
            "--workdir",
            str(tmp_path),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=2300,
        env={**os.environ},
        check=False,
    )
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    (LOG_DIR / f"rehearsal-{env or 'default'}.txt").write_text(done.stdout + done.stderr)
    print(done.stdout)
    assert done.returncode == 0, "\n".join(
        line
        for line in (done.stdout + done.stderr).splitlines()
        if not line.startswith(("PASS", "SKIP"))
    )
