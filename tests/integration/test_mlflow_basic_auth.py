"""An MLflow server requiring basic auth (`mlflow server --app-name basic-auth`, which needs the
Flask-WTF package, mlflow's `auth` extra): training, export and the model server authenticate
with MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD from the environment."""

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.restartable_mlflow import MlflowServer
from tests.processes import REPO_ROOT, model_server, wait_for

pytestmark = pytest.mark.integration

ADMIN = "admin"
PASSWORD = "Hardening-Test-Passw0rd!"  # a throwaway server's admin


@pytest.fixture(scope="module")
def secured_mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    root = tmp_path_factory.mktemp("mlflow-basic-auth")
    config = root / "basic_auth.ini"
    config.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{root / 'auth.db'}\n"
        f"admin_username = {ADMIN}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    env = {
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_AUTH_ADMIN_PASSWORD": PASSWORD,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": os.urandom(16).hex(),
    }
    server = MlflowServer(root, env, "--app-name", "basic-auth")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def lifecycle(
    module: str, mlflow: MlflowServer, credentials: bool, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
    env["MLFLOW_TRACKING_URI"] = mlflow.url
    if credentials:
        env |= {"MLFLOW_TRACKING_USERNAME": ADMIN, "MLFLOW_TRACKING_PASSWORD": PASSWORD}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_basic_auth_end_to_end(secured_mlflow: MlflowServer, tmp_path: Path) -> None:
    url = secured_mlflow.url
    anonymous = httpx.get(f"{url}/api/2.0/mlflow/registered-models/search")
    assert anonymous.status_code == 401  # the server really requires credentials

    refused = lifecycle("training", secured_mlflow, False, "--dataset", "iris")
    assert refused.returncode != 0
    assert "Traceback" not in refused.stderr
    assert len(refused.stderr.strip().splitlines()) <= 3, refused.stderr

    trained = lifecycle("training", secured_mlflow, True, "--dataset", "iris")
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "registered iris-classifier version 1 with alias production" in trained.stdout

    # The lifecycle commands speak MLflow's REST API themselves, with the same credentials.
    anonymous_list = lifecycle("training.lifecycle", secured_mlflow, False, "models")
    assert anonymous_list.returncode == 1
    assert anonymous_list.stderr.startswith(
        "error: MLflow: the MLflow server refused our credentials (401)"
    )
    assert anonymous_list.stderr.count("\n") == 1
    listed = lifecycle("training.lifecycle", secured_mlflow, True, "models")
    assert listed.returncode == 0, listed.stderr
    row = listed.stdout.splitlines()[3].split()
    assert (row[0], row[3]) == ("1", "production")
    rollback = lifecycle("training.lifecycle", secured_mlflow, True, "rollback")
    assert rollback.returncode == 2  # nothing to roll back to, found under the lifecycle lock
    assert rollback.stderr.startswith("error: no earlier version of production is recorded")

    out = tmp_path / "exported"
    exported = lifecycle(
        "training.export", secured_mlflow, True,
        "--model-uri", "models:/iris-classifier@production", "--out", str(out),
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert (out / "model.onnx").is_file()

    env = {"MLFLOW_TRACKING_URI": url, "REGISTRY_TIMEOUT_SECONDS": "5"}
    with model_server(
        {**env, "MLFLOW_TRACKING_USERNAME": ADMIN, "MLFLOW_TRACKING_PASSWORD": PASSWORD},
        tmp_path,
    ) as server:
        info = httpx.get(server.url + "/model/info").json()
        assert (info["source"], info["version"]) == ("registry", "1")
        assert PASSWORD not in server.log()
    with model_server(
        {**env, "MLFLOW_TRACKING_USERNAME": ADMIN, "MLFLOW_TRACKING_PASSWORD": "wrong"},
        tmp_path,
        wait="/health",
    ) as server:
        deadline = time.monotonic() + 30
        reason = "loading"
        while reason == "loading" and time.monotonic() < deadline:
            reason = wait_for(server.url + "/ready", status=503).json()["reason"]
            time.sleep(0.1)  # "loading" until the first attempt has been answered
        assert reason == "the model registry is unavailable"  # the probe names no host
        assert "refused our credentials (401)" in server.log()
