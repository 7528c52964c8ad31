"""The servers the harness starts itself: ours, the constant-JSON yardstick, and MLflow's.

All listen on 127.0.0.1 only, run one worker, and are pinned to the CPU they are given.
"""

import os
import sys
from pathlib import Path

from loadtest.processes import Service, free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCAL_TRACKING_URI = f"sqlite:///{REPO_ROOT / '.mlflow' / 'mlflow.db'}"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or LOCAL_TRACKING_URI


def missing_store() -> str | None:
    """A one-line hint when the default local store has not been created yet, else None."""
    if os.environ.get("MLFLOW_TRACKING_URI") or (REPO_ROOT / ".mlflow" / "mlflow.db").exists():
        return None
    return "no local model store in .mlflow/: run `make train` first (or set MLFLOW_TRACKING_URI)"


def model_server(
    model_uri: str,
    log_dir: Path,
    cpu: int | None,
    extra_env: dict[str, str] | None = None,
    checkout: Path = REPO_ROOT,
) -> Service:
    """`python -m server` with its defaults, one worker, serving `model_uri`; the server of
    `checkout` (another copy of this repository, run with the same Python) if given."""
    port = free_port()
    env = {
        "MODEL_URI": model_uri,
        "MLFLOW_TRACKING_URI": tracking_uri(),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WORKERS": "1",
        **(extra_env or {}),
    }
    return Service(
        "this server" if checkout == REPO_ROOT else f"the server in {checkout}",
        [sys.executable, "-m", "server"],
        port=port,
        ready_path="/ready",
        log_path=log_dir / "server.log",
        env=env,
        cpu=cpu,
        cwd=checkout,
    )


def baseline(log_dir: Path, cpu: int | None) -> Service:
    """The constant-JSON Starlette endpoint on the same uvicorn stack as ours."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "loadtest.baseline_app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--no-server-header",
        "--log-level",
        "warning",
    ]
    # Readiness: the only route is POST /predict, so a GET answers 405, which proves it is up.
    return Service(
        "constant JSON",
        command,
        port=port,
        ready_path="/",
        log_path=log_dir / "baseline.log",
        cpu=cpu,
        cwd=REPO_ROOT,
        any_answer=True,
    )


def mlflow_server(name: str, model_uri: str, log_dir: Path, cpu: int | None) -> Service:
    """`mlflow models serve --env-manager local` with one worker."""
    port = free_port()
    bin_dir = str(Path(sys.executable).parent)
    command = [
        os.path.join(bin_dir, "mlflow"),
        "models",
        "serve",
        "--model-uri",
        model_uri,
        "--env-manager",
        "local",
        "--workers",
        "1",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    env = {
        "MLFLOW_TRACKING_URI": tracking_uri(),
        # MLflow execs `uvicorn` from PATH; make it this environment's.
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    slug = name.replace(" ", "-").replace("(", "").replace(")", "")
    return Service(
        name,
        command,
        port=port,
        ready_path="/ping",
        log_path=log_dir / f"{slug}.log",
        env=env,
        cpu=cpu,
        cwd=REPO_ROOT,
    )
