"""POST /feedback and GET /quality in process: an iris model, a SQLite store, real recording."""

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from server.app import create_app
from server.settings import Settings
from tests.samples import SETOSA, VIRGINICA


def wait_ready(client: TestClient) -> None:
    deadline = time.monotonic() + 20
    while client.get("/ready").status_code != 200:
        assert time.monotonic() < deadline, client.get("/ready").json()
        time.sleep(0.05)


def settings_for(model_dirs: dict[str, Path], tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "model_uri": str(model_dirs["iris"]),
        "record_predictions": True,
        "prediction_store_uri": f"sqlite:///{tmp_path / 'predictions.db'}",
        "record_flush_seconds": 0.05,
        "quality_min_labels": 5,
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def client(model_dirs: dict[str, Path], tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(model_dirs, tmp_path))) as test_client:
        wait_ready(test_client)
        yield test_client


def predict(client: TestClient, request_id: str, body: dict[str, object]) -> dict[str, object]:
    response = client.post("/predict", json=body, headers={"X-Request-ID": request_id})
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == request_id
    answer: dict[str, object] = response.json()
    return answer


def send_feedback(client: TestClient, body: object, expect: int = 200) -> dict[str, Any]:
    """Feedback right after predicting may race the writer: retry a moment while unknown."""
    deadline = time.monotonic() + 5
    while True:
        response = client.post("/feedback", json=body)
        if response.status_code == expect or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert response.status_code == expect, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_feedback_for_one_prediction_and_for_rows_of_a_batch(client: TestClient) -> None:
    predict(client, "one", {"features": SETOSA})
    predict(client, "batch", {"instances": [SETOSA, VIRGINICA, VIRGINICA]})
    assert send_feedback(client, {"request_id": "one", "label": "setosa"}) == {
        "accepted": 1,
        "unknown": [],
    }
    items = [
        {"request_id": "batch", "row": 0, "label": "setosa"},
        {"request_id": "batch", "row": 2, "label": "versicolor"},  # the model said virginica
    ]
    assert send_feedback(client, {"feedback": items})["accepted"] == 2

    report = client.get("/quality").json()
    (entry,) = report["versions"]
    assert entry["variant"] == "champion"
    assert entry["predictions"] == 4
    assert entry["labels"] == 3
    accuracy = entry["quality"]["accuracy"]
    assert accuracy["value"] == pytest.approx(2 / 3)
    assert accuracy["lower"] < 2 / 3 < accuracy["upper"]
    assert entry["heldout"]["accuracy"] > 0.9
    text = client.get("/metrics").text
    assert 'model_live_labels{model_version="1",variant="champion"} 3.0' in text
    assert 'model_live_quality{metric="accuracy",model_version="1",variant="champion"}' in text
    assert 'feedback_rows_total{outcome="accepted"} 3.0' in text


def test_a_correction_replaces_the_earlier_label(client: TestClient) -> None:
    predict(client, "fixed", {"features": SETOSA})
    send_feedback(client, {"request_id": "fixed", "label": "virginica"})
    send_feedback(client, {"request_id": "fixed", "label": "setosa"})
    (entry,) = client.get("/quality").json()["versions"]
    assert entry["labels"] == 1
    assert entry["quality"]["accuracy"]["value"] == 1.0


def test_unknown_request_ids_get_a_clear_answer(client: TestClient) -> None:
    predict(client, "known", {"features": SETOSA})
    send_feedback(client, {"request_id": "known", "label": "setosa"})
    answer = send_feedback(client, {"request_id": "never-made", "label": "setosa"}, expect=404)
    assert answer["accepted"] == 0
    assert answer["detail"] == "no recorded prediction matches this feedback"
    (unknown,) = answer["unknown"]
    assert unknown["request_id"] == "never-made"
    assert "no recorded prediction" in unknown["reason"]
    mixed = {
        "feedback": [
            {"request_id": "known", "label": "setosa"},
            {"request_id": "known", "row": 7, "label": "setosa"},
        ]
    }
    answer = send_feedback(client, mixed)
    assert answer["accepted"] == 1
    assert [u["row"] for u in answer["unknown"]] == [7]


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"label": "setosa"}, 422, "request_id"),
        ({"request_id": "x"}, 422, "exactly one of label"),
        ({"request_id": "x", "label": "setosa", "value": 1.0}, 422, "exactly one of label"),
        ({"request_id": "x", "label": 3}, 422, "class name"),
        ({"request_id": "x", "row": -1, "label": "setosa"}, 422, "row"),
        ({"request_id": "x", "row": True, "label": "setosa"}, 422, "row"),
        ({"request_id": "x" * 129, "label": "setosa"}, 422, "request_id"),
        ({"request_id": "x", "label": "setosa", "extra": 1}, 422, "unknown field"),
        ({"feedback": []}, 422, "non-empty"),
        ({"feedback": [{"request_id": "x", "label": "a"}] * 1001}, 413, "limit is 1000"),
        ([1, 2], 422, "object"),
    ],
)
def test_bad_feedback_is_refused_clearly(
    client: TestClient, body: object, status: int, says: str
) -> None:
    response = client.post("/feedback", json=body)
    assert response.status_code == status, response.text
    assert says in response.json()["detail"]


def test_a_wrong_label_refuses_the_whole_body_and_stores_nothing(client: TestClient) -> None:
    predict(client, "a", {"features": SETOSA})
    predict(client, "b", {"features": SETOSA})
    send_feedback(client, {"request_id": "a", "label": "setosa"})
    body = {
        "feedback": [
            {"request_id": "b", "label": "setosa"},
            {"request_id": "a", "label": "tulip"},
        ]
    }
    response = client.post("/feedback", json=body)
    assert response.status_code == 422
    assert "unknown label 'tulip'" in response.json()["detail"]
    response = client.post("/feedback", json={"request_id": "a", "value": 1.5})
    assert response.status_code == 422
    assert "send label" in response.json()["detail"]
    (entry,) = client.get("/quality").json()["versions"]
    assert entry["labels"] == 1  # b's good item was not stored either


def test_feedback_needs_the_api_key_when_keys_are_set(
    model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    settings = settings_for(model_dirs, tmp_path, api_keys=frozenset({"k1"}))
    with TestClient(create_app(settings)) as client:
        body = {"request_id": "x", "label": "setosa"}
        assert client.post("/feedback", json=body).status_code == 401
        response = client.post("/feedback", json=body, headers={"Authorization": "Bearer k1"})
        assert response.status_code in (404, 503)  # authorised; no such prediction (or no model)


def test_sampled_out_ids_are_told_apart_from_unknown_ones(
    model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    from server.recording import sampled

    settings = settings_for(model_dirs, tmp_path, record_sample_rate=0.5)
    ids = [f"req-{i}" for i in range(40)]
    inside = [i for i in ids if sampled(i.encode(), 0.5)]
    outside = [i for i in ids if not sampled(i.encode(), 0.5)]
    assert inside
    assert outside
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        for request_id in ids:
            predict(client, request_id, {"features": SETOSA})
        items = [{"request_id": i, "label": "setosa"} for i in ids]
        deadline = time.monotonic() + 5
        while True:
            answer = client.post("/feedback", json={"feedback": items}).json()
            if answer["accepted"] == len(inside) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert answer["accepted"] == len(inside)
        reasons = {u["request_id"]: u["reason"] for u in answer["unknown"]}
        assert set(reasons) == set(outside)
        assert all("outside the sample" in r for r in reasons.values())


def test_recording_off_answers_404_with_the_reason(
    model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    settings = settings_for(model_dirs, tmp_path, record_predictions=False)
    with TestClient(create_app(settings)) as client:
        response = client.post("/feedback", json={"request_id": "x", "label": "setosa"})
        assert response.status_code == 404
        assert "RECORD_PREDICTIONS=false" in response.json()["detail"]
        assert client.get("/quality").status_code == 404
    assert not (tmp_path / "predictions.db").exists()


def test_an_unreachable_store_is_a_503_not_a_500(
    model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    settings = settings_for(
        model_dirs,
        tmp_path,
        prediction_store_uri=f"sqlite:///{blocked}/predictions.db",
        shutdown_grace_seconds=0.5,  # how long shutdown waits for a store that never comes
    )
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        assert client.post("/predict", json={"features": SETOSA}).status_code == 200
        response = client.post("/feedback", json={"request_id": "x", "label": "setosa"})
        assert response.status_code == 503
        assert "prediction store is unavailable" in response.json()["detail"]
