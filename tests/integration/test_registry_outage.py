"""A real `mlflow server` stopped, frozen and restarted under a serving model server; broken
versions refused while the previous one keeps serving."""

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import TrainedStore
from tests.integration.checks import server_errors
from tests.integration.restartable_mlflow import MlflowServer, exported_files, register_version
from tests.processes import ServerProcess, model_server, wait_for
from tests.samples import SETOSA

pytestmark = pytest.mark.integration

NAME = "iris-classifier"


class Registry:
    def __init__(self, server: MlflowServer, client: Any, versions: dict[str, str]) -> None:
        self.server = server
        self.client = client
        self.versions = versions  # role -> registered version

    def point(self, role: str) -> str:
        version = self.versions[role]
        self.client.set_registered_model_alias(NAME, "production", version)
        return version


@pytest.fixture(scope="module")
def registry(
    trained_store: TrainedStore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Registry]:
    from mlflow import MlflowClient

    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    server.start()
    try:
        client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
        client.create_registered_model(NAME)
        good = exported_files(trained_store.exported[NAME])
        wine = trained_store.exported["wine-classifier"]
        metadata = orjson.loads(good["extra_files/metadata.json"])
        versions = {
            "good": register_version(client, NAME, good),
            "next": register_version(client, NAME, good),
            "corrupt-onnx": register_version(
                client, NAME, {**good, "model.onnx": good["model.onnx"][:2000] + b"\x00" * 64}
            ),
            # wine's 13 features for iris' 4-input graph
            "inputs-disagree": register_version(
                client,
                NAME,
                {**good, "extra_files/metadata.json": (wine / "metadata.json").read_bytes()},
            ),
            "input-name-disagrees": register_version(
                client,
                NAME,
                {
                    **good,
                    "extra_files/metadata.json": orjson.dumps({**metadata, "input_name": "x"}),
                },
            ),
            "no-metadata": register_version(
                client, NAME, {k: v for k, v in good.items() if "metadata" not in k}
            ),
        }
        yield Registry(server, client, versions)
    finally:
        server.stop()


def start_model_server(registry: Registry, log_dir: Path, wait: str = "/ready") -> Any:
    env = {
        "MLFLOW_TRACKING_URI": registry.server.url,
        "MODEL_URI": f"models:/{NAME}@production",
        "MODEL_POLL_SECONDS": "0.5",
        "REGISTRY_TIMEOUT_SECONDS": "2",
    }
    return model_server(env, log_dir, wait=wait)


def served_version(server: ServerProcess) -> str:
    version: str = httpx.get(server.url + "/model/info").json()["version"]
    return version


def keeps_serving(server: ServerProcess, version: str, seconds: float) -> int:
    """Predict and probe for `seconds`; every answer must be right and come from `version`."""
    answered = 0
    deadline = time.monotonic() + seconds
    with httpx.Client(timeout=2) as client:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            response = client.post(server.url + "/predict", json={"features": SETOSA})
            assert response.status_code == 200, response.text
            assert response.json()["prediction"] == "setosa"
            assert response.json()["model_version"] == version
            assert time.perf_counter() - started < 0.5  # loading never blocks a request
            assert client.get(server.url + "/ready").status_code == 200
            answered += 1
            time.sleep(0.05)
    return answered


def wait_for_version(server: ServerProcess, version: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while served_version(server) != version:
        assert time.monotonic() < deadline, f"still serving {served_version(server)}"
        time.sleep(0.1)


def log_entries(server: ServerProcess, message: str) -> list[dict[str, Any]]:
    lines = [orjson.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("message") == message]


def wait_for_log(server: ServerProcess, message: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not (found := log_entries(server, message)):
        assert time.monotonic() < deadline, f"no {message!r} in the log:\n{server.log()[-3000:]}"
        time.sleep(0.1)
    return found[-1]


def test_registry_outage_at_start_up_and_while_serving(registry: Registry, tmp_path: Path) -> None:
    """One outage (mlflow server restarts are slow), seen by a serving and a starting server."""
    registry.point("good")
    version = registry.versions["good"]
    with start_model_server(registry, tmp_path) as server:
        assert served_version(server) == version

        registry.server.stop()  # down for a while
        try:
            with start_model_server(registry, tmp_path, wait="/health") as starting:
                not_ready = wait_for(starting.url + "/ready", status=503)
                assert not_ready.json()["reason"] in (
                    "loading",
                    "the model registry is unavailable",
                )
                assert "cannot reach MLflow" in wait_for_log(starting, "no model loaded")["error"]
                assert keeps_serving(server, version, 4) > 20
                assert (
                    "cannot reach MLflow"
                    in wait_for_log(server, "registry unavailable; keeping the current model")[
                        "error"
                    ]
                )
                registry.server.start()  # back
                wait_for(starting.url + "/ready", status=200, timeout=30)
                assert served_version(starting) == version
        finally:
            if registry.server.process is None or registry.server.process.poll() is not None:
                registry.server.start()

        wait_for_log(server, "registry reachable again", timeout=30)
        registry.point("next")  # the alias moves once the registry is back
        wait_for_version(server, registry.versions["next"])

        registry.server.freeze()  # a registry that accepts connections and never answers
        try:
            keeps_serving(server, registry.versions["next"], 5)
        finally:
            registry.server.thaw()
        assert (
            "timed out"
            in log_entries(server, "registry unavailable; keeping the current model")[-1]["error"]
        )

        registry.point("good")  # a rollback after the freeze is picked up too
        wait_for_version(server, version)
        assert server_errors(server.log()) == []


@pytest.mark.parametrize(
    ("role", "reason"),
    [
        ("corrupt-onnx", "onnxruntime cannot load the model"),
        ("inputs-disagree", "metadata lists 13 features"),
        ("input-name-disagrees", "are not ['x']"),
        ("no-metadata", "metadata.json"),
    ],
)
def test_broken_versions_are_refused_and_the_previous_keeps_serving(
    registry: Registry, tmp_path: Path, role: str, reason: str
) -> None:
    registry.point("good")
    with start_model_server(registry, tmp_path) as server:
        good = registry.versions["good"]
        broken = registry.point(role)
        refused = wait_for_log(server, "model version refused; the current model keeps serving")
        assert refused["version"] == broken
        assert reason in refused["error"], refused
        assert refused["level"] == "error"
        keeps_serving(server, good, 3)  # retried with backoff, never instead of serving
        refusals = log_entries(server, "model version refused; the current model keeps serving")
        metrics = httpx.get(server.url + "/metrics").text
        attempts = [entry["attempt"] for entry in refusals]
        assert attempts == list(range(1, len(attempts) + 1))
        delays = [entry["retry_in_seconds"] for entry in refusals]
        assert all(later == 2 * earlier for earlier, later in itertools.pairwise(delays))
        assert 2 <= len(refusals) < 6  # six polls in 3 s: not every poll retries it
        counted = float(
            metrics.split('model_reload_failures_total{variant="champion"} ')[1].split()[0]
        )
        assert len(refusals) <= counted <= len(refusals) + 1  # each attempt counts once
        registry.point("next")  # a good version after a broken one is taken
        wait_for_version(server, registry.versions["next"])
