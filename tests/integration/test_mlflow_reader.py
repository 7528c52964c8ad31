"""The read-only MLflow user, made by the chart's hook Job as rendered, against a real
`mlflow server --app-name basic-auth` with production's default permission (NO_PERMISSIONS): the
API's registry client works with it, and it cannot move an alias or write."""

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.integration.rendered_job import Manifest, run_job
from tests.integration.restartable_mlflow import MlflowServer
from tests.processes import REPO_ROOT, model_server

pytestmark = pytest.mark.integration

ADMIN = ("admin", "Admin-Test-Passw0rd-4c1f")  # a throwaway server's admin
READER = ("api-reader", "Reader-Test-Passw0rd-9e2a")
MODEL = "iris-classifier"
API = "/api/2.0/mlflow"


@dataclass
class Setup:
    server: MlflowServer
    job: Manifest
    objects: list[Manifest]
    secrets: dict[str, dict[str, str]]
    root: Path

    def run(self, **env: str) -> subprocess.CompletedProcess[str]:
        """The hook Job, once, as production renders it."""
        overrides = {"MLFLOW_TRACKING_URI": self.server.url, "MLFLOW_WAIT_SECONDS": "60", **env}
        return run_job(self.job, self.objects, self.secrets, self.root, overrides)

    def log_lines(self) -> list[str]:
        return (self.server.root / f"mlflow-{self.server.starts}.log").read_text().splitlines()


def rendered_production() -> list[Manifest]:
    """The chart as production installs it (helm from .tools, installed when missing)."""
    subprocess.run([str(REPO_ROOT / "scripts" / "install-chart-tools.sh")], check=True)
    from tests.chart.conftest import render

    return render(("values-production.yaml",), operator=True)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    objects = rendered_production()
    job = next(o for o in objects if o["kind"] == "Job")
    api = next(
        o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("-api")
    )
    api_env = api["spec"]["template"]["spec"]["containers"][0]["env"]
    api_secret = next(e for e in api_env if e["name"] == "MLFLOW_TRACKING_PASSWORD")
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    admin_secret = volumes["admin-secret"]["secret"]["secretName"]
    reader_secret = volumes["reader-secret"]["secret"]["secretName"]
    assert api_secret["valueFrom"]["secretKeyRef"]["name"] == reader_secret

    root = tmp_path_factory.mktemp("mlflow-reader")
    config = root / "basic_auth.ini"
    config.write_text(
        "[mlflow]\n"
        "default_permission = NO_PERMISSIONS\n"
        f"database_uri = sqlite:///{root / 'auth.db'}\n"
        f"admin_username = {ADMIN[0]}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    env = {
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": os.urandom(16).hex(),
    }
    server = MlflowServer(root, env, "--app-name", "basic-auth")
    server.start(timeout=180)  # the auth app's start-up is slow on a busy 2-core machine
    try:
        train(server.url)
        admin("POST", server, "registered-models/create", json={"name": "another-model"})
        secrets = {
            admin_secret: {"username": ADMIN[0], "password": ADMIN[1]},
            reader_secret: {"username": READER[0], "password": READER[1]},
        }
        yield Setup(server, job, objects, secrets, root / "job")
    finally:
        server.stop()


def train(url: str) -> None:
    """`python -m training` as the people who train run it: with the admin's credentials."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
    env |= {
        "MLFLOW_TRACKING_URI": url,
        "MLFLOW_TRACKING_USERNAME": ADMIN[0],
        "MLFLOW_TRACKING_PASSWORD": ADMIN[1],
    }
    trained = subprocess.run(
        [sys.executable, "-m", "training", "--dataset", "iris"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]


def admin(method: str, server: MlflowServer, path: str, **kwargs: object) -> httpx.Response:
    response = httpx.request(method, f"{server.url}{API}/{path}", auth=ADMIN, timeout=30, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == 200, (path, response.status_code)
    return response


def as_reader(
    method: str, server: MlflowServer, path: str, password: str = READER[1], **kwargs: object
) -> int:
    url = path if path.startswith("http") else f"{server.url}{API}/{path}"
    response = httpx.request(method, url, auth=(READER[0], password), timeout=30, **kwargs)  # type: ignore[arg-type]
    return response.status_code


def assert_quiet(result: subprocess.CompletedProcess[str]) -> None:
    """No password and no traceback in what the Job prints."""
    output = result.stdout + result.stderr
    for secret in (ADMIN[1], READER[1], "Rotated-Passw0rd-77b1"):
        assert secret not in output
    assert "Traceback" not in output
    for hashing in ("scrypt", "pbkdf2"):  # no password hash either
        assert hashing not in output


def test_the_rendered_job_makes_a_user_that_reads_the_model_and_nothing_else(
    setup: Setup, tmp_path: Path
) -> None:
    result = setup.run()
    assert result.returncode == 0, result.stdout + result.stderr
    assert_quiet(result)
    assert f"created user {READER[0]}" in result.stdout
    assert f"granted READ on registered_model {MODEL}" in result.stdout

    server = setup.server
    model = {"name": MODEL}
    assert (
        as_reader("GET", server, "registered-models/alias", params={**model, "alias": "production"})
        == 200
    )
    uri = httpx.get(
        f"{server.url}{API}/model-versions/get-download-uri",
        params={**model, "version": "1"},
        auth=READER,
    ).json()["artifact_uri"]
    files = (
        f"{server.url}/api/2.0/mlflow-artifacts/artifacts/{uri.removeprefix('mlflow-artifacts:/')}"
    )
    assert as_reader("GET", server, f"{files}/model.onnx") == 200

    # Nothing it can change: aliases, versions, the model, its files, tags.
    alias = {**model, "alias": "production", "version": "1"}
    assert as_reader("POST", server, "registered-models/alias", json=alias) == 403
    assert (
        as_reader(
            "DELETE", server, "registered-models/alias", params={**model, "alias": "production"}
        )
        == 403
    )
    source = {**model, "source": uri, "run_id": ""}
    assert as_reader("POST", server, "model-versions/create", json=source) == 403
    assert (
        as_reader("PATCH", server, "registered-models/update", json={**model, "description": "x"})
        == 403
    )
    assert as_reader("DELETE", server, "registered-models/delete", json=model) == 403
    tag = {**model, "version": "1", "key": "k", "value": "v"}
    assert as_reader("POST", server, "model-versions/set-tag", json=tag) == 403
    assert as_reader("PUT", server, f"{files}/model.onnx", content=b"not a model") == 403
    # And nothing it was not given.
    assert (
        as_reader("GET", server, "registered-models/get", params={"name": "another-model"}) == 403
    )

    # The server's registry client loads the model with these credentials.
    env = {
        "MLFLOW_TRACKING_URI": server.url,
        "MODEL_URI": f"models:/{MODEL}@production",
        "MLFLOW_TRACKING_USERNAME": READER[0],
        "MLFLOW_TRACKING_PASSWORD": READER[1],
        "REGISTRY_TIMEOUT_SECONDS": "10",
    }
    with model_server(env, tmp_path) as api:
        info = httpx.get(api.url + "/model/info").json()
        assert (info["source"], info["version"]) == ("registry", "1")
        assert READER[1] not in api.log()


WRITES = ('"POST ', '"PATCH ', '"PUT ', '"DELETE ')


def test_a_second_run_changes_nothing(setup: Setup) -> None:
    assert setup.run().returncode == 0
    before = len(setup.log_lines())
    again = setup.run()
    assert again.returncode == 0, again.stderr
    assert_quiet(again)
    assert "its password is the one in its Secret" in again.stdout
    assert f"READ on registered_model {MODEL} (already)" in again.stdout
    writes = [line for line in setup.log_lines()[before:] if any(w in line for w in WRITES)]
    assert writes == []


def test_a_reader_given_more_is_brought_back_to_read_only(setup: Setup) -> None:
    assert setup.run().returncode == 0
    server = setup.server
    grant = {"username": READER[0], "resource_type": "registered_model", "resource_id": MODEL}
    httpx.post(f"{server.url}/api/3.0/mlflow/users/permissions/revoke", json=grant, auth=ADMIN)
    httpx.post(
        f"{server.url}/api/3.0/mlflow/users/permissions/grant",
        json={**grant, "permission": "EDIT"},
        auth=ADMIN,
    ).raise_for_status()
    admin("PATCH", server, "users/update-admin", json={"username": READER[0], "is_admin": True})
    alias = {"name": MODEL, "alias": "production", "version": "1"}
    assert as_reader("POST", server, "registered-models/alias", json=alias) == 200  # it could

    result = setup.run()
    assert result.returncode == 0, result.stderr
    assert "is no longer an admin" in result.stdout
    assert f"revoked EDIT on registered_model {MODEL}" in result.stdout
    assert as_reader("POST", server, "registered-models/alias", json=alias) == 403
    assert as_reader("GET", server, "registered-models/get", params={"name": MODEL}) == 200


def test_rotating_the_secret_rotates_the_password(setup: Setup) -> None:
    reader_secret = next(s for s in setup.secrets.values() if s["username"] == READER[0])
    reader_secret["password"] = "Rotated-Passw0rd-77b1"
    try:
        result = setup.run()
        assert result.returncode == 0, result.stderr
        assert_quiet(result)
        assert "password set from its Secret" in result.stdout
        current = "users/current"
        assert as_reader("GET", setup.server, current, password="Rotated-Passw0rd-77b1") == 200
        assert as_reader("GET", setup.server, current) == 401
    finally:
        reader_secret["password"] = READER[1]
        assert setup.run().returncode == 0


def test_wrong_admin_credentials_fail_in_one_line(setup: Setup) -> None:
    admin_secret = next(s for s in setup.secrets.values() if s["username"] == ADMIN[0])
    admin_secret["password"] = "not-the-password"
    try:
        result = setup.run()
    finally:
        admin_secret["password"] = ADMIN[1]
    assert result.returncode == 1
    assert_quiet(result)
    assert "not-the-password" not in result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: GET {API}/users/get answered 401 (are these an admin's credentials?)"
    ]


def test_the_admin_is_never_made_the_reader(setup: Setup) -> None:
    result = setup.run(MLFLOW_READER_USERNAME_FILE="", MLFLOW_READER_USERNAME=ADMIN[0])
    assert result.returncode == 1
    assert "the reader and the admin are the same user" in result.stderr
    assert_quiet(result)
