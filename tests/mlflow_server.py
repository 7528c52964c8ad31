"""A real `mlflow server` on loopback for the integration tests (training, lifecycle, server).

SQLite backend and proxied artifacts in a temporary directory, the same layout `make mlflow`
serves from .mlflow/, so clients reach both the registry and the artifacts over HTTP only.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

STARTUP_TIMEOUT_SECONDS = 90.0


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def start_mlflow_server(tmp_path: Path) -> tuple[str, subprocess.Popen[bytes]]:
    """Start `mlflow server` with its store in tmp_path; return its URL once /health answers."""
    port = free_port()
    tmp_path.mkdir(parents=True, exist_ok=True)
    log = (tmp_path / "mlflow-server.log").open("wb")
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host=127.0.0.1",
        f"--port={port}",
        "--workers=1",
        f"--backend-store-uri=sqlite:///{tmp_path / 'mlflow.db'}",
        "--serve-artifacts",
        f"--artifacts-destination={tmp_path / 'artifacts'}",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    # MLflow's background job runner and telemetry cost tens of seconds at start-up on a busy
    # machine; these tests need neither.
    env.update(
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="true",
    )
    # Its own process group, so teardown can stop the workers it forks along with it.
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return url, process
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    stop_mlflow_server(process)
    tail = (tmp_path / "mlflow-server.log").read_text(errors="replace")[-3000:]
    raise RuntimeError(f"mlflow server did not become healthy on {url}:\n{tail}")


def stop_mlflow_server(process: subprocess.Popen[bytes]) -> None:
    """Stop the server and its workers (the process group it leads)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)
    else:
        # The leader exited; make sure no worker outlived it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
