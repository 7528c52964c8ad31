"""Real processes on loopback for integration tests: free ports, and the model server."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(url: str, timeout: float = 30.0, status: int | None = 200) -> httpx.Response:
    """Poll `url` until it answers (with `status`, when given); fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Exception | str = "no answer"
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=2)
            if status is None or response.status_code == status:
                return response
            last = f"status {response.status_code}: {response.text[:200]}"
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer {status} within {timeout}s: {last}")


class ServerProcess:
    def __init__(self, process: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
        self.process = process
        self.url = url
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self, timeout: float = 15.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@contextmanager
def model_server(
    env: Mapping[str, str], log_dir: Path, wait: str | None = "/ready"
) -> Iterator[ServerProcess]:
    """Run `python -m server` on a free port with `env`; stop it on exit."""
    port = free_port()
    log_path = log_dir / f"server-{port}.log"
    full_env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "MODEL_RETRY_SECONDS": "0.2",
        "SHUTDOWN_DELAY_SECONDS": "0",  # tests that need the drain delay set it
        # Recorded predictions stay with the test, out of the repository's own store.
        "PREDICTION_STORE_URI": f"sqlite:///{log_dir / f'predictions-{port}.db'}",
        **env,
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "server"],
            cwd=REPO_ROOT,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = ServerProcess(process, f"http://127.0.0.1:{port}", log_path)
    try:
        if wait is not None:
            try:
                wait_for(server.url + wait, timeout=30)
            except TimeoutError as exc:
                raise TimeoutError(f"{exc}\nserver log:\n{server.log()}") from None
        yield server
    finally:
        server.stop()
