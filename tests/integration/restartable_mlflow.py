"""A real `mlflow server` on loopback (SQLite backend, proxied artifacts) that tests can stop,
freeze and restart on the same port, and helpers to register hand-made model versions in it."""

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.mlflow_server import QUIET_MLFLOW_ENV
from tests.processes import free_port, wait_for


class MlflowServer:
    def __init__(self, root: Path, env: dict[str, str] | None = None, *args: str) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env or {}
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout: float = 90) -> None:
        self.starts += 1
        log = (self.root / f"mlflow-{self.starts}.log").open("wb")
        mlflow = Path(sys.executable).with_name("mlflow")
        self.process = subprocess.Popen(
            [
                str(mlflow), "server",
                "--host", "127.0.0.1",
                "--port", str(self.port),
                "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
                "--artifacts-destination", str(self.root / "artifacts"),
                "--serve-artifacts",
                "--workers", "1",
                *self.args,
            ],
            env={**os.environ, **QUIET_MLFLOW_ENV, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() reaches the workers too
        )  # fmt: skip
        log.close()
        wait_for(self.url + "/health", timeout=timeout, status=None)

    def _signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, sig)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self._signal(signal.SIGCONT)  # in case it was frozen
        self._signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.process.wait()

    def freeze(self) -> None:
        """SIGSTOP: connections are accepted by the kernel and never answered."""
        self._signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal(signal.SIGCONT)


def register_version(
    client: Any, name: str, files: dict[str, bytes], experiment_id: str = "0"
) -> str:
    """Log `files` as a run's `model/` artifact (proxied) and register it as a new version.

    Files are laid out as MLflow's onnx flavor does: model.onnx at the top, the rest in extra_files/.
    """
    run = client.create_run(experiment_id)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        for relative, content in files.items():
            path = model_dir / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        client.log_artifacts(run.info.run_id, str(model_dir), "model")
    client.set_terminated(run.info.run_id)
    version = client.create_model_version(
        name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id
    )
    return str(version.version)


def exported_files(model_dir: Path) -> dict[str, bytes]:
    """An exported model directory as the files of an MLflow onnx model."""
    return {
        "model.onnx": (model_dir / "model.onnx").read_bytes(),
        "extra_files/metadata.json": (model_dir / "metadata.json").read_bytes(),
        "extra_files/drift_reference.json": (model_dir / "drift_reference.json").read_bytes(),
    }
