"""MAX_CONCURRENCY: requests past the limit are shed with 503 and Retry-After, probes never are."""

import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import orjson
import pytest

from tests.conftest import TrainedStore
from tests.integration.checks import server_errors
from tests.integration.rawhttp import open_request, read_response
from tests.processes import ServerProcess, model_server
from tests.samples import SETOSA

pytestmark = pytest.mark.integration

BODY = orjson.dumps({"features": SETOSA})
LIMIT = 4


@pytest.fixture(scope="module")
def limited(
    trained_store: TrainedStore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    env = {"MLFLOW_TRACKING_URI": trained_store.tracking_uri, "MAX_CONCURRENCY": str(LIMIT)}
    with model_server(env, tmp_path_factory.mktemp("overload")) as server:
        yield server


def hold_slots(server: ServerProcess, count: int) -> list[socket.socket]:
    """Requests that are in flight until their bodies are finished: each holds one slot."""
    held = []
    for _ in range(count):
        sock = open_request(server.url, "/predict", len(BODY))
        sock.sendall(BODY[:10])
        held.append(sock)
    time.sleep(0.3)  # the server starts each request when its headers arrive
    return held


def test_past_the_limit_is_shed_and_probes_still_answer(limited: ServerProcess) -> None:
    held = hold_slots(limited, LIMIT)
    try:
        shed = httpx.post(
            limited.url + "/predict", content=BODY, headers={"Content-Type": "application/json"}
        )
        assert shed.status_code == 503
        assert shed.headers["retry-after"] == "1"
        assert shed.headers["content-type"] == "application/json"
        assert "concurrency" in shed.json()["detail"]
        assert shed.headers["x-request-id"]
        oip = httpx.post(
            limited.url + "/v2/models/iris-classifier/infer",
            json={"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                              "data": list(SETOSA.values())}]},
        )  # fmt: skip
        assert oip.status_code == 503
        for path in ("/health", "/ready", "/metrics", "/v2/health/live", "/v2/health/ready"):
            started = time.perf_counter()
            assert httpx.get(limited.url + path).status_code == 200, path
            assert time.perf_counter() - started < 0.5
        metrics = httpx.get(limited.url + "/metrics").text
        assert "requests_shed_total 2.0" in metrics
        assert 'http_requests_total{method="POST",route="shed",status="503"} 2.0' in metrics
    finally:
        for sock in held:  # the held requests were accepted: they complete normally
            sock.sendall(BODY[10:])
        statuses = [read_response(sock)[0] for sock in held]
        for sock in held:
            sock.close()
    assert statuses == [200] * LIMIT
    after = httpx.post(
        limited.url + "/predict", content=BODY, headers={"Content-Type": "application/json"}
    )
    assert after.status_code == 200


def test_a_flood_gets_answers_or_503_and_health_stays_fast(limited: ServerProcess) -> None:
    outcomes: Counter[str] = Counter()
    stop = threading.Event()

    def flood() -> None:
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                try:
                    response = client.post(
                        limited.url + "/predict",
                        content=BODY,
                        headers={"Content-Type": "application/json"},
                    )
                    outcomes[str(response.status_code)] += 1
                except httpx.HTTPError as exc:
                    outcomes[type(exc).__name__] += 1

    # Slow senders keep the limit reached, so the flood is shed in part rather than all served.
    held = hold_slots(limited, LIMIT - 1)
    threads = [threading.Thread(target=flood) for _ in range(16)]
    for thread in threads:
        thread.start()
    health_latencies = []
    try:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            started = time.perf_counter()
            assert httpx.get(limited.url + "/health", timeout=5).status_code == 200
            health_latencies.append(time.perf_counter() - started)
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        for sock in held:
            sock.sendall(BODY[10:])
            read_response(sock)
            sock.close()
    assert set(outcomes) <= {"200", "503"}, outcomes
    assert outcomes["200"] > 100, outcomes
    assert outcomes["503"] > 0, outcomes
    assert max(health_latencies) < 1.0, sorted(health_latencies)[-5:]
    assert server_errors(limited.log()) == []
