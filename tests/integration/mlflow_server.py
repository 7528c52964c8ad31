"""A real `mlflow server` on loopback for integration tests, and the few registry calls they make.

SQLite backend and proxied artifacts (`--serve-artifacts`), as in the chart. The registry calls go
through MLflow's REST API with httpx, so a test does not pay for importing mlflow.
"""

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.processes import REPO_ROOT, free_port, wait_for

# MLflow's background job runner (a pool of huey workers) and telemetry cost seconds at start-up
# and CPU throughout; these tests need neither.
QUIET_MLFLOW_ENV = {
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
}


@dataclass(frozen=True)
class MlflowServer:
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = httpx.request(method, f"{self.url}/api/2.0/mlflow/{path}", timeout=30, **kwargs)
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer

    def model_version(self, name: str, version: str) -> dict[str, Any]:
        answer = self._call("GET", "model-versions/get", params={"name": name, "version": version})
        return dict(answer["model_version"])

    def create_version(self, name: str, model_id: str, run_id: str) -> str:
        """Register an already logged model (`models:/<model_id>`) as a new version."""
        body = {"name": name, "source": f"models:/{model_id}", "model_id": model_id}
        answer = self._call("POST", "model-versions/create", json={**body, "run_id": run_id})
        return str(answer["model_version"]["version"])

    def set_alias(self, name: str, alias: str, version: str) -> None:
        body = {"name": name, "alias": alias, "version": version}
        self._call("POST", "registered-models/alias", json=body)


@contextmanager
def mlflow_server(root: Path, timeout: float = 90.0) -> Iterator[MlflowServer]:
    """Run `mlflow server` with its store in `root` on a free loopback port; stop it on exit."""
    port = free_port()
    log_path = root / f"mlflow-{port}.log"
    command = [
        *(sys.executable, "-m", "mlflow", "server"),
        *("--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
        *("--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}"),
        *("--serve-artifacts", "--artifacts-destination", str(root / "artifacts")),
    ]
    with log_path.open("wb") as log:
        # A session of its own, so stopping it also stops the uvicorn worker it spawns.
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env={**os.environ, **QUIET_MLFLOW_ENV},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = MlflowServer(f"http://127.0.0.1:{port}", log_path)
    try:
        try:
            wait_for(f"{server.url}/health", timeout=timeout)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\nmlflow log:\n{server.log()}") from None
        yield server
    finally:
        stop_session(process)


def stop_session(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM a process started with start_new_session=True and its children; then SIGKILL."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    with contextlib.suppress(ProcessLookupError):  # children that outlived their parent
        os.killpg(process.pid, signal.SIGKILL)
