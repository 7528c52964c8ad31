"""Two real server processes sharing a real PostgreSQL store: feedback at either replica for a
prediction made by the other, live quality seen by both, and nothing recorded lost on SIGTERM."""

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from demo.postgres import postgres_server
from server.store import PredictionStore
from tests.conftest import TrainedStore
from tests.integration.checks import server_errors
from tests.processes import model_server
from tests.samples import SETOSA, VIRGINICA

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    with postgres_server() as uri:
        yield uri


def env_for(trained_store: TrainedStore, store_uri: str, **extra: str) -> dict[str, str]:
    return {
        "MODEL_URI": str(trained_store.exported["iris-classifier"]),
        "PREDICTION_STORE_URI": store_uri,
        "RECORD_PREDICTIONS": "true",
        "RECORD_FLUSH_SECONDS": "0.1",
        "QUALITY_INTERVAL_SECONDS": "0.5",
        "QUALITY_MIN_LABELS": "5",
        **extra,
    }


def count_rows(store_uri: str, where: str = "") -> int:
    store = PredictionStore(store_uri)
    connection = store.connect()
    try:
        return int(store.run(connection, f"SELECT COUNT(*) FROM predictions {where}")[0][0])  # noqa: S608
    finally:
        connection.close()


def test_feedback_at_one_replica_for_predictions_made_by_the_other(
    trained_store: TrainedStore, postgres: str, tmp_path: Path
) -> None:
    env = env_for(trained_store, postgres)
    with model_server(env, tmp_path) as a, model_server(env, tmp_path) as b:
        ids = [f"replica-a-{i}" for i in range(30)]
        for i, request_id in enumerate(ids):
            body = {"features": SETOSA if i % 2 else VIRGINICA}
            response = httpx.post(
                f"{a.url}/predict", json=body, headers={"X-Request-ID": request_id}
            )
            assert response.status_code == 200
        # Even rows were answered virginica; half of those are labelled setosa: 8 wrong of 30.
        items = [
            {
                "request_id": rid,
                "label": "setosa" if i % 2 else ("virginica" if i % 4 else "setosa"),
            }
            for i, rid in enumerate(ids)
        ]
        deadline = time.monotonic() + 10
        while True:
            answer = httpx.post(f"{b.url}/feedback", json={"feedback": items}).json()
            if answer.get("accepted") == len(ids) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert answer == {"accepted": 30, "unknown": []}
        for replica in (a, b):
            deadline = time.monotonic() + 10  # a report is at most a second old
            while True:
                (entry,) = httpx.get(f"{replica.url}/quality").json()["versions"]
                if entry["labels"] == 30 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert entry["labels"] == 30
            assert entry["predictions"] == 30
            assert entry["quality"]["accuracy"]["value"] == pytest.approx(22 / 30)
        assert server_errors(a.log() + b.log()) == []


def test_nothing_recorded_is_lost_on_sigterm(
    trained_store: TrainedStore, postgres: str, tmp_path: Path
) -> None:
    # A flush interval longer than the test: only the shutdown drain can write these rows.
    env = env_for(trained_store, postgres, RECORD_FLUSH_SECONDS="3600")
    with model_server(env, tmp_path) as server:
        with httpx.Client(base_url=server.url) as client:
            for i in range(200):
                response = client.post(
                    "/predict", json={"features": SETOSA}, headers={"X-Request-ID": f"term-{i}"}
                )
                assert response.status_code == 200
        assert count_rows(postgres, "WHERE request_id LIKE 'term-%'") == 0
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(30) == 0
    assert count_rows(postgres, "WHERE request_id LIKE 'term-%'") == 200
