"""MLflow with its artifacts in S3 behind the artifact proxy: `make mlflow` with
MLFLOW_ARTIFACTS_DESTINATION=s3://..., against an S3 API on loopback (moto's server mode) that
checks every request's signature and policy as AWS does.

Only the MLflow server holds S3 credentials, limited by deploy/aws/mlflow-artifacts-policy.json.
`make train`, `make promote`, `make rollback` and the model server run with no AWS variable in
their environment and an empty HOME, and every request the S3 API gets is signed with the MLflow
server's key.
"""

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.aws_api import AwsApi, aws_api, create_user
from tests.mlflow_server import QUIET_MLFLOW_ENV, MlflowServer, stop_session
from tests.processes import REPO_ROOT, free_port, model_server, wait_for
from tests.samples import SETOSA

pytestmark = [pytest.mark.integration, pytest.mark.aws]

BUCKET = "platform-artifacts"
PREFIX = "mlflow"
NAME = "s3-iris"
POLICY = REPO_ROOT / "deploy" / "aws" / "mlflow-artifacts-policy.json"
# Two users (three actions each) and CreateBucket; every request after these is checked.
SETUP_ACTIONS = 7
BUCKET_READER = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{BUCKET}"}
    ],
}


def artifacts_policy(bucket: str, prefix: str) -> dict[str, Any]:
    """The documented policy with its placeholders filled in."""
    text = POLICY.read_text().replace("BUCKET", bucket).replace("PREFIX", prefix)
    policy: dict[str, Any] = json.loads(text)
    return policy


@dataclass(frozen=True)
class Stack:
    s3: AwsApi
    mlflow_url: str
    mlflow_key_id: str
    reader_keys: dict[str, str]
    client_env: dict[str, str]


def client_environment(home: Path) -> dict[str, str]:
    """This process's environment without any AWS or MLflow variable, with an empty HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLFLOW_"))}
    # An empty HOME hides any ~/.aws; uv keeps its cache in case `make` has to sync the venv.
    env.setdefault("UV_CACHE_DIR", str(Path.home() / ".cache" / "uv"))
    home.mkdir(parents=True, exist_ok=True)
    return env | {"HOME": str(home)}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("s3-artifacts")
    with aws_api(root / "s3", authenticate_after=SETUP_ACTIONS, record=True) as s3:
        keys = create_user(s3, "mlflow-server", artifacts_policy(BUCKET, PREFIX))
        reader = create_user(s3, "test-reader", BUCKET_READER)
        s3.client("s3").create_bucket(Bucket=BUCKET)
        port = free_port()
        server_env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
            **QUIET_MLFLOW_ENV,
            "MLFLOW_WORKERS": "1",
            "MLFLOW_S3_ENDPOINT_URL": s3.url,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": keys["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": keys["aws_secret_access_key"],
        }
        log_path = root / "mlflow.log"
        with log_path.open("wb") as log:
            mlflow = subprocess.Popen(
                [
                    *("make", "--no-print-directory", "mlflow", f"MLFLOW_PORT={port}"),
                    f"MLFLOW_BACKEND_STORE_URI=sqlite:///{root / 'mlflow.db'}",
                    f"MLFLOW_ARTIFACTS_DESTINATION=s3://{BUCKET}/{PREFIX}",
                ],
                cwd=REPO_ROOT,
                env=server_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # stop_session reaches make, mlflow and its workers
            )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for(f"{url}/health", timeout=180)
        except TimeoutError as exc:
            stop_session(mlflow)
            raise TimeoutError(f"{exc}\nmlflow log:\n{log_path.read_text()}") from None
        try:
            home = client_environment(root / "home")
            yield Stack(s3, url, keys["aws_access_key_id"], reader, home)
        finally:
            stop_session(mlflow)


def make(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = stack.client_env | {"MLFLOW_TRACKING_URI": stack.mlflow_url}
    return subprocess.run(
        ["make", "--no-print-directory", "-s", *args, f"MODEL={NAME}"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def served_version(url: str, expected: str, timeout: float = 30) -> None:
    """Wait until the model server answers with `expected` as its model version."""
    deadline = time.monotonic() + timeout
    while (version := httpx.get(f"{url}/model/info").json().get("version")) != expected:
        assert time.monotonic() < deadline, f"still serving {version}, expected {expected}"
        time.sleep(0.2)


@pytest.mark.timeout(900)  # four MLflow clients and a server, on a shared 2-core machine
def test_train_serve_promote_and_roll_back_with_artifacts_in_s3(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trained = make(stack, "train", f"ARGS=--model-name {NAME} --n-estimators 5")
    assert trained.returncode == 0, trained.stdout[-2000:] + trained.stderr[-3000:]
    assert f"registered {NAME} version 1 with alias production" in trained.stdout
    # Version 2: the same logged model registered again (a second training run costs 30 s).
    registry = MlflowServer(stack.mlflow_url, Path("/dev/null"))
    first = registry.model_version(NAME, "1")
    model_id = first["source"].removeprefix("models:/")
    assert registry.create_version(NAME, model_id, first["run_id"]) == "2"

    # The registry hands clients proxy URIs; the files are in the bucket, under the prefix.
    run = httpx.get(
        f"{stack.mlflow_url}/api/2.0/mlflow/runs/get", params={"run_id": first["run_id"]}
    ).json()["run"]
    assert run["info"]["artifact_uri"].startswith("mlflow-artifacts:/")
    keys = [
        obj["Key"]
        for page in stack.s3.client("s3", **stack.reader_keys)
        .get_paginator("list_objects_v2")
        .paginate(Bucket=BUCKET)
        for obj in page.get("Contents", [])
    ]
    assert all(key.startswith(f"{PREFIX}/") for key in keys), keys
    assert any(key.endswith("/model.onnx") for key in keys), keys

    # The model server downloads through the proxy too, and follows promotion and rollback.
    for name in [k for k in os.environ if k.startswith(("AWS_", "MLFLOW_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", stack.client_env["HOME"])
    env = {
        "MLFLOW_TRACKING_URI": stack.mlflow_url,
        "MODEL_URI": f"models:/{NAME}@production",
        "MODEL_POLL_SECONDS": "0.5",
    }
    with model_server(env, tmp_path) as server:
        served_version(server.url, "1")
        answer = httpx.post(f"{server.url}/predict", json={"features": SETOSA}).json()
        assert answer["model_version"] == "1"

        promoted = make(stack, "promote", "VERSION=2")
        assert promoted.returncode == 0, promoted.stderr[-3000:]
        served_version(server.url, "2")

        rolled_back = make(stack, "rollback")
        assert rolled_back.returncode == 0, rolled_back.stderr[-3000:]
        served_version(server.url, "1")
        assert httpx.get(f"{server.url}/model/info").json()["source"] == "registry"

    # Every request S3 got after the setup came from the MLflow server, signed with its key (no
    # presigned URL handed to a client), and the documented policy was enough for all of it.
    setup = {"bootstrap", stack.reader_keys["aws_access_key_id"]}
    requests = [
        r for r in stack.s3.requests() if r.access_key_id not in setup and "/moto-api/" not in r.url
    ]
    assert len(requests) > 10
    assert {r.access_key_id for r in requests} == {stack.mlflow_key_id}
    assert not [r.url for r in requests if r.presigned]
    assert "AccessDenied" not in stack.s3.log()


def test_the_store_refuses_requests_without_the_servers_credentials(stack: Stack) -> None:
    """The check above can fail: S3 here refuses what is not signed with an issued key."""
    stranger = stack.s3.client(
        "s3", aws_access_key_id="AKIASTRANGER", aws_secret_access_key="not-a-key"
    )
    with pytest.raises(ClientError, match="InvalidAccessKeyId"):
        stranger.list_objects_v2(Bucket=BUCKET, Prefix=PREFIX)
