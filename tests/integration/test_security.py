"""API keys on the inference routes, open probes, response headers and request ids in the log."""

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.conftest import TrainedStore
from tests.processes import REPO_ROOT, ServerProcess, free_port, model_server
from tests.samples import SETOSA

pytestmark = pytest.mark.integration

OIP = {
    "inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]
}
ENV_KEY = "env-key-7c1e4a9b2d"
FILE_KEY = "file-key-93f0b6aa51"
WRONG_KEY = "wrong-key-5d2c8e1f00"
INFERENCE = {
    "/predict": {"features": SETOSA},
    "/v2/models/iris-classifier/infer": OIP,
    "/v2/models/iris-classifier/versions/1/infer": OIP,
}
OPEN_ROUTES = ["/health", "/ready", "/metrics", "/v2/health/live", "/v2/health/ready"]
KEYED_ROUTES = [
    "/v2",
    "/v2/models/iris-classifier",
    "/v2/models/iris-classifier/ready",
    "/model/info",
    "/drift",
    "/openapi.json",
    "/docs",
]


@pytest.fixture(scope="module")
def secured(
    trained_store: TrainedStore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    logs = tmp_path_factory.mktemp("security")
    keys_file = logs / "api-keys"  # as a Kubernetes Secret is mounted: one key a line
    keys_file.write_text(f"\n{FILE_KEY}\n\n")
    env = {
        "MLFLOW_TRACKING_URI": trained_store.tracking_uri,
        "API_KEYS": f" {ENV_KEY} , ",
        "API_KEYS_FILE": str(keys_file),
        "ACCESS_LOG": "true",
        "API_KEYS_RELOAD_SECONDS": "0.2",
    }
    with model_server(env, logs) as server:
        yield server
    keys_file.write_text(f"{FILE_KEY}\n")  # as it was, for the next module's run


def call(server: ServerProcess, path: str, auth: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if auth is not None:
        headers["Authorization"] = auth
    return httpx.post(server.url + path, content=orjson.dumps(INFERENCE[path]), headers=headers)


@pytest.mark.parametrize("path", list(INFERENCE))
@pytest.mark.parametrize(
    "auth",
    [
        None,
        f"Bearer {WRONG_KEY}",
        "Bearer",
        f"Basic {ENV_KEY}",
        ENV_KEY,
        f"Bearer {ENV_KEY}x",
        f"Bearer {ENV_KEY[:-1]}",
        f"Bearer {ENV_KEY},{FILE_KEY}",
    ],
)
def test_inference_refuses_a_missing_or_wrong_key(
    secured: ServerProcess, path: str, auth: str | None
) -> None:
    response = call(secured, path, auth)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.headers["content-type"] == "application/json"
    key = "error" if path.startswith("/v2") else "detail"
    assert "key" in response.json()[key].lower()


@pytest.mark.parametrize("path", list(INFERENCE))
@pytest.mark.parametrize("auth", [f"Bearer {ENV_KEY}", f"bearer {FILE_KEY}"])
def test_inference_accepts_keys_from_the_variable_and_the_file(
    secured: ServerProcess, path: str, auth: str
) -> None:
    response = call(secured, path, auth)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("path", OPEN_ROUTES)
def test_probes_and_metrics_stay_open(secured: ServerProcess, path: str) -> None:
    assert httpx.get(secured.url + path).status_code == 200


@pytest.mark.parametrize("path", KEYED_ROUTES)
def test_metadata_and_docs_need_a_key(secured: ServerProcess, path: str) -> None:
    refused = httpx.get(secured.url + path)
    assert refused.status_code == 401
    assert "iris" not in refused.text
    assert "sepal" not in refused.text
    headers = {"Authorization": f"Bearer {ENV_KEY}"}
    assert httpx.get(secured.url + path, headers=headers).status_code == 200


def test_a_rotated_key_file_takes_effect_without_a_restart(secured: ServerProcess) -> None:
    keys_file = next(secured.log_path.parent.glob("api-keys"))
    rotated = "rotated-key-4e1f9a0c77"
    keys_file.write_text(f"{rotated}\n")
    deadline = time.monotonic() + 10
    while call(secured, "/predict", f"Bearer {rotated}").status_code != 200:
        assert time.monotonic() < deadline, "the rotated key was not picked up"
        time.sleep(0.1)
    assert call(secured, "/predict", f"Bearer {FILE_KEY}").status_code == 401
    assert call(secured, "/predict", f"Bearer {ENV_KEY}").status_code == 200
    keys_file.write_text("")  # emptied by mistake: the keys in use stay
    time.sleep(1)
    assert call(secured, "/predict", f"Bearer {rotated}").status_code == 200
    assert call(secured, "/predict", None).status_code == 401
    keys_file.write_text(f"{FILE_KEY}\n")
    while call(secured, "/predict", f"Bearer {FILE_KEY}").status_code != 200:
        assert time.monotonic() < deadline + 10, "the restored key was not picked up"
        time.sleep(0.1)
    assert rotated not in secured.log()
    assert "API key file not reloaded" in secured.log()


def test_the_start_up_log_says_keys_are_on(secured: ServerProcess) -> None:
    starting = next(
        orjson.loads(line) for line in secured.log().splitlines() if '"starting"' in line
    )
    assert starting["api_keys"] == 2
    assert starting["open_routes"] == ["metrics"]


def test_keys_are_never_logged_and_every_request_is(secured: ServerProcess) -> None:
    for auth in (f"Bearer {ENV_KEY}", f"Bearer {WRONG_KEY}", f"Bearer {FILE_KEY}"):
        call(secured, "/predict", auth)
    ids = [f"trace-{i}" for i in range(3)]
    for request_id, presented in zip(ids, (None, f"Bearer {ENV_KEY}", None), strict=True):
        headers = {"X-Request-ID": request_id, "Content-Type": "application/json"}
        if presented:
            headers["Authorization"] = presented
        httpx.post(secured.url + "/predict", json={"features": SETOSA}, headers=headers)
    log = secured.log()
    for secret in (ENV_KEY, FILE_KEY, WRONG_KEY):
        assert secret not in log
    lines = [orjson.loads(line) for line in log.splitlines() if line.startswith("{")]
    access = {line["request_id"]: line for line in lines if line.get("logger") == "server.access"}
    assert access["trace-0"]["status"] == 401
    assert access["trace-1"]["status"] == 200
    assert access["trace-1"]["route"] == "/predict"


def test_response_headers(secured: ServerProcess) -> None:
    for path in ("/health", "/nope", "/model/info"):
        response = httpx.get(secured.url + path)
        assert "server" not in response.headers
        assert response.headers["content-type"] == "application/json"
        assert len(response.headers["x-request-id"]) == 32
    wrong_method = httpx.delete(secured.url + "/predict")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "POST"
    assert wrong_method.headers["content-type"] == "application/json"
    assert httpx.get(secured.url + "/metrics").headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize("presented", ["x" * 129, "has space", "ünïcode", "new\\nline", 'quote"d'])
def test_unsafe_request_ids_are_replaced(secured: ServerProcess, presented: str) -> None:
    response = httpx.get(secured.url + "/health", headers=[(b"X-Request-ID", presented.encode())])
    echoed = response.headers["x-request-id"]
    if presented in ("new\\nline", 'quote"d'):  # visible ASCII is safe to echo and to log
        assert echoed == presented
    else:
        assert echoed != presented
        assert len(echoed) == 32


def test_openapi_says_the_key_is_required(secured: ServerProcess) -> None:
    headers = {"Authorization": f"Bearer {ENV_KEY}"}
    paths = httpx.get(secured.url + "/openapi.json", headers=headers).json()["paths"]
    assert paths["/predict"]["post"]["security"] == [{"bearer": []}]
    assert paths["/model/info"]["get"]["security"] == [{"bearer": []}]
    assert paths["/v2/models/{name}/infer"]["post"]["security"] == [{"bearer": []}]
    assert "security" not in paths["/health"]["get"]


def test_without_keys_inference_is_open(trained_store: TrainedStore, tmp_path: Path) -> None:
    with model_server({"MLFLOW_TRACKING_URI": trained_store.tracking_uri}, tmp_path) as server:
        assert call(server, "/predict", None).status_code == 200
        assert call(server, "/predict", f"Bearer {WRONG_KEY}").status_code == 200
        paths = httpx.get(server.url + "/openapi.json").json()["paths"]
        assert paths["/predict"]["post"]["security"] == [{}]
        warning = next(line for line in server.log().splitlines() if "no API keys" in line)
        assert orjson.loads(warning)["level"] == "warning"


@pytest.mark.parametrize("content", ["", "\n \n", ",,"])
def test_a_keys_file_without_keys_stops_the_server(tmp_path: Path, content: str) -> None:
    empty = tmp_path / "api-keys"
    empty.write_text(content)
    result = subprocess.run(
        [sys.executable, "-m", "server"],
        cwd=REPO_ROOT,
        env={"PATH": "/usr/bin:/bin", "API_KEYS_FILE": str(empty)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "API_KEYS_FILE" in result.stderr
    assert "holds no keys" in result.stderr


def test_an_unreadable_keys_file_stops_the_server(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "server"],
        cwd=REPO_ROOT,
        env={"PATH": "/usr/bin:/bin", "API_KEYS_FILE": str(tmp_path / "missing")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "API_KEYS_FILE" in result.stderr
    assert "cannot be read" in result.stderr


def test_credentials_in_the_tracking_uri_never_show(tmp_path: Path) -> None:
    """/ready answers anyone: a short reason, no host names, paths or credentials."""
    secret = "pa55-9d8e7f"
    uri = f"http://mlflow-admin:{secret}@127.0.0.1:{free_port()}/"
    env = {"MLFLOW_TRACKING_URI": uri, "REGISTRY_TIMEOUT_SECONDS": "1"}
    with model_server(env, tmp_path, wait="/health") as server:
        deadline = time.monotonic() + 20
        while (ready := httpx.get(server.url + "/ready")).json()["reason"] == "loading":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert ready.status_code == 503
        assert ready.json() == {
            "status": "not ready",
            "model_loaded": False,
            "reason": "the model registry is unavailable",
        }
        answers = [
            httpx.post(server.url + "/predict", json={"features": SETOSA}).text,
            httpx.get(server.url + "/model/info").text,
            httpx.get(server.url + "/v2/models/iris-classifier").text,
        ]
        log = server.log()
    for text in [ready.text, *answers]:
        for hidden in (secret, "mlflow-admin", "127.0.0.1"):
            assert hidden not in text
    assert secret not in log
    assert "cannot reach MLflow at http://127.0.0.1" in log  # the detail is in the log


def test_a_missing_model_path_stays_out_of_the_answers(tmp_path: Path) -> None:
    hidden = tmp_path / "private-dir" / "model"
    with model_server({"MODEL_URI": str(hidden)}, tmp_path, wait="/health") as server:
        deadline = time.monotonic() + 20
        while (ready := httpx.get(server.url + "/ready")).json()["reason"] == "loading":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        predict = httpx.post(server.url + "/predict", json={"features": SETOSA})
        assert "private-dir" in server.log()
    assert ready.status_code == predict.status_code == 503
    assert "private-dir" not in ready.text
    assert "private-dir" not in predict.text
