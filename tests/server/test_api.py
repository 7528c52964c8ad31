"""The simple API's routes (/predict, /ready, /model/info, /metrics, ...) and every bad input, in process."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import orjson
import pytest
from starlette.testclient import TestClient

from server.settings import Settings
from tests.samples import SETOSA, VIRGINICA
from tests.server.conftest import serve

JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def iris(model_dirs: dict[str, Path]) -> Iterator[TestClient]:
    settings = Settings(model_uri=str(model_dirs["iris"]), max_body_bytes=20000, max_batch=50)
    with serve(settings) as client:
        yield client


def post(client: TestClient, path: str, body: object, **kwargs: Any) -> httpx.Response:
    response: httpx.Response = client.post(path, content=orjson.dumps(body), headers=JSON, **kwargs)
    return response


def expected_labels(model_dir: Path, rows: list[list[float]]) -> list[int]:
    session = ort.InferenceSession(
        str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    labels = session.run(["label"], {"input": np.asarray(rows, dtype=np.float32)})[0]
    return [int(x) for x in labels]


def test_health_and_ready(iris: TestClient) -> None:
    assert iris.get("/health").json() == {"status": "healthy"}
    ready = iris.get("/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "model_loaded": True}


def test_predict_one_row(iris: TestClient) -> None:
    response = post(iris, "/predict", {"features": SETOSA})
    assert response.status_code == 200
    body = response.json()
    assert body["prediction"] == "setosa"
    assert 0.5 < body["confidence"] <= 1.0
    assert body["model_version"] == "1"
    assert 0 < body["inference_time_ms"] < 1000
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-model-version"] == "1"
    assert "server" not in response.headers


def test_predict_batch_keeps_order(iris: TestClient, model_dirs: dict[str, Path]) -> None:
    rows = [
        SETOSA,
        VIRGINICA,
        SETOSA,
        {**SETOSA, "petal length (cm)": 4.5, "petal width (cm)": 1.4},
    ]
    response = post(iris, "/predict", {"instances": rows})
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    names = ["setosa", "versicolor", "virginica"]
    expected = expected_labels(model_dirs["iris"], [list(r.values()) for r in rows])
    assert [p["prediction"] for p in predictions] == [names[i] for i in expected]
    assert predictions[1]["prediction"] == "virginica"


def test_request_id_is_echoed_or_generated(iris: TestClient) -> None:
    echoed = iris.get("/health", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    generated = iris.get("/health").headers["x-request-id"]
    assert len(generated) == 32


def test_model_info(iris: TestClient, model_dirs: dict[str, Path]) -> None:
    info = iris.get("/model/info").json()
    assert info["name"] == "iris-classifier"
    assert info["version"] == "1"
    assert info["framework"] == "onnx"
    assert info["task"] == "classification"
    assert info["features"] == list(SETOSA)
    assert info["classes"] == ["setosa", "versicolor", "virginica"]
    assert info["source"] == "local"
    assert info["model_uri"] == str(model_dirs["iris"])
    assert info["loaded_at"].endswith("Z")


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (
            {"features": {k: v for k, v in SETOSA.items() if k != "petal width (cm)"}},
            400,
            "petal width (cm)",
        ),
        ({"features": {**SETOSA, "colour": 1.0}}, 400, "colour"),
        ({"feature": SETOSA}, 422, "features"),
        ({}, 422, "features"),
        ([1, 2, 3], 422, "JSON object"),
        ({"features": [5.1, 3.5, 1.4, 0.2]}, 422, "object"),
        ({"features": {**SETOSA, "sepal width (cm)": "3.5"}}, 422, "sepal width (cm)"),
        ({"features": {**SETOSA, "sepal width (cm)": None}}, 422, "null"),
        ({"features": {**SETOSA, "sepal width (cm)": True}}, 422, "sepal width (cm)"),
        ({"features": {**SETOSA, "sepal width (cm)": 1e300}}, 422, "finite"),
        ({"instances": []}, 422, "instances"),
        ({"instances": SETOSA}, 422, "instances"),
        ({"instances": [SETOSA, "x"]}, 422, "instances[1]"),
        ({"features": SETOSA, "instances": [SETOSA]}, 422, "features"),
        ({"instances": [SETOSA] * 51}, 413, "limit of 50"),
    ],
)
def test_predict_rejects_bad_bodies(
    iris: TestClient, body: object, status: int, fragment: str
) -> None:
    response = post(iris, "/predict", body)
    assert response.status_code == status, response.text
    assert fragment in response.json()["detail"]


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b'{"features": {"sepal length (cm)": NaN}}', 400),  # a missing feature comes first
        (
            b'{"features": {"sepal length (cm)": 5.1, "sepal width (cm)": Infinity, "petal length (cm)": 1, "petal width (cm)": 1}}',
            422,
        ),
        (
            b'{"features": {"sepal length (cm)": 1e999, "sepal width (cm)": 1, "petal length (cm)": 1, "petal width (cm)": 1}}',
            422,
        ),
        (b'{"features": ', 400),
        (b"", 400),
        (b"\xff\xfe", 400),
        (b"[" * 5000 + b"]" * 5000, 400),
    ],
)
def test_predict_rejects_bad_json(iris: TestClient, raw: bytes, status: int) -> None:
    response = iris.post("/predict", content=raw, headers=JSON)
    assert response.status_code == status, response.text
    assert response.json()["detail"]


def test_predict_with_nan_names_the_problem(iris: TestClient) -> None:
    raw = b'{"features": {"sepal length (cm)": NaN, "sepal width (cm)": 1, "petal length (cm)": 1, "petal width (cm)": 1}}'
    response = iris.post("/predict", content=raw, headers=JSON)
    assert response.status_code == 422
    assert "NaN" in response.json()["detail"]


def test_content_type_and_size_limits(iris: TestClient) -> None:
    body = orjson.dumps({"features": SETOSA})
    wrong_type = iris.post("/predict", content=body, headers={"Content-Type": "text/plain"})
    assert wrong_type.status_code == 415
    assert "application/json" in wrong_type.json()["detail"]
    too_big = iris.post("/predict", content=b" " * 30000, headers=JSON)
    assert too_big.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must hold while streaming
        for _ in range(30):
            yield b" " * 1000

    streamed = iris.post("/predict", content=chunks(), headers=JSON)
    assert streamed.status_code == 413
    gzip = iris.post("/predict", content=body, headers={**JSON, "Content-Encoding": "gzip"})
    assert gzip.status_code == 415


def test_unknown_route_and_method(iris: TestClient) -> None:
    missing = iris.get("/nope")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Not Found"}
    wrong_method = iris.get("/predict")
    assert wrong_method.status_code == 405


def test_metrics_names_and_bounded_labels(iris: TestClient) -> None:
    post(iris, "/predict", {"features": SETOSA})
    for i in range(5):
        iris.get(f"/scanner-{i}")
    text = iris.get("/metrics").text
    for name in (
        "http_request_duration_seconds_bucket",
        "http_requests_total",
        "model_inference_seconds_bucket",
        "predictions_total",
        "model_info",
        "model_ready 1.0",
        "process_resident_memory_bytes",
    ):
        assert name in text
    assert 'http_requests_total{method="POST",route="/predict",status="200"}' in text
    assert 'route="unmatched",status="404"' in text
    assert "scanner" not in text
    assert (
        'predictions_total{model_version="1",predicted_class="setosa",variant="champion"}' in text
    )
    assert (
        'model_info{name="iris-classifier",source="local",variant="champion",version="1"} 1.0'
        in text
    )
    assert 'model_inference_seconds_bucket{le="1e-05",variant="champion"}' in text


@pytest.mark.parametrize(
    ("dataset", "name"), [("wine", "wine-classifier"), ("diabetes", "diabetes-regressor")]
)
def test_other_models_by_model_uri_alone(
    model_dirs: dict[str, Path], dataset: str, name: str
) -> None:
    metadata = orjson.loads((model_dirs[dataset] / "metadata.json").read_bytes())
    row = metadata["input_example"][0]
    with serve(Settings(model_uri=str(model_dirs[dataset]))) as server:
        info = server.get("/model/info").json()
        assert info["name"] == name
        assert info["features"] == metadata["features"]
        body = post(
            server, "/predict", {"features": dict(zip(metadata["features"], row, strict=True))}
        ).json()
        if name == "diabetes-regressor":
            assert isinstance(body["prediction"], float)
            assert "confidence" not in body
            session = ort.InferenceSession(
                str(model_dirs[dataset] / "model.onnx"), providers=["CPUExecutionProvider"]
            )
            expected = session.run(None, {"input": np.asarray([row], dtype=np.float32)})[0]
            assert body["prediction"] == pytest.approx(float(expected.ravel()[0]), abs=1e-9)
        else:
            assert body["prediction"] in metadata["classes"]
            assert 0 < body["confidence"] <= 1
        oip = post(
            server,
            f"/v2/models/{name}/infer",
            {
                "inputs": [
                    {"name": "input", "shape": [1, len(row)], "datatype": "FP64", "data": row}
                ]
            },
        ).json()
        assert oip["model_name"] == name
        missing = post(server, "/predict", {"features": {metadata["features"][0]: 1.0}})
        assert missing.status_code == 400
        assert metadata["features"][1] in missing.json()["detail"]


def test_local_path_model_uri(model_dirs: dict[str, Path]) -> None:
    with serve(Settings(model_uri=str(model_dirs["iris"]))) as server:
        info = server.get("/model/info").json()
        assert info["source"] == "local"
        assert info["version"] == "1"
        assert post(server, "/predict", {"features": SETOSA}).json()["prediction"] == "setosa"
