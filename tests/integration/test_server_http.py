"""Every route and every bad-input case, against a real uvicorn process on loopback."""

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import orjson
import pytest

from tests.conftest import TrainedStore
from tests.processes import ServerProcess, model_server
from tests.samples import SETOSA, VIRGINICA

pytestmark = pytest.mark.integration

JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def iris(
    trained_store: TrainedStore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    env = {
        "MLFLOW_TRACKING_URI": trained_store.tracking_uri,
        "MODEL_URI": "models:/iris-classifier@production",
        "MAX_BODY_BYTES": "20000",
        "MAX_BATCH": "50",
    }
    with model_server(env, tmp_path_factory.mktemp("logs")) as server:
        yield server


def post(server: ServerProcess, path: str, body: object, **kwargs: object) -> httpx.Response:
    return httpx.post(server.url + path, content=orjson.dumps(body), headers=JSON, **kwargs)  # type: ignore[arg-type]


def expected_labels(model_dir: Path, rows: list[list[float]]) -> list[int]:
    session = ort.InferenceSession(
        str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    labels = session.run(["label"], {"input": np.asarray(rows, dtype=np.float32)})[0]
    return [int(x) for x in labels]


def test_health_and_ready(iris: ServerProcess) -> None:
    assert httpx.get(iris.url + "/health").json() == {"status": "healthy"}
    ready = httpx.get(iris.url + "/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "model_loaded": True}


def test_predict_one_row(iris: ServerProcess) -> None:
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


def test_predict_batch_keeps_order(iris: ServerProcess, trained_store: TrainedStore) -> None:
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
    expected = expected_labels(
        trained_store.exported["iris-classifier"], [list(r.values()) for r in rows]
    )
    assert [p["prediction"] for p in predictions] == [names[i] for i in expected]
    assert predictions[1]["prediction"] == "virginica"


def test_request_id_is_echoed_or_generated(iris: ServerProcess) -> None:
    echoed = httpx.get(iris.url + "/health", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    generated = httpx.get(iris.url + "/health").headers["x-request-id"]
    assert len(generated) == 16


def test_model_info(iris: ServerProcess) -> None:
    info = httpx.get(iris.url + "/model/info").json()
    assert info["name"] == "iris-classifier"
    assert info["version"] == "1"
    assert info["framework"] == "onnx"
    assert info["task"] == "classification"
    assert info["features"] == list(SETOSA)
    assert info["classes"] == ["setosa", "versicolor", "virginica"]
    assert info["source"] == "registry"
    assert info["model_uri"] == "models:/iris-classifier@production"
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
    iris: ServerProcess, body: object, status: int, fragment: str
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
def test_predict_rejects_bad_json(iris: ServerProcess, raw: bytes, status: int) -> None:
    response = httpx.post(iris.url + "/predict", content=raw, headers=JSON)
    assert response.status_code == status, response.text
    assert response.json()["detail"]


def test_predict_with_nan_names_the_problem(iris: ServerProcess) -> None:
    raw = b'{"features": {"sepal length (cm)": NaN, "sepal width (cm)": 1, "petal length (cm)": 1, "petal width (cm)": 1}}'
    response = httpx.post(iris.url + "/predict", content=raw, headers=JSON)
    assert response.status_code == 422
    assert "NaN" in response.json()["detail"]


def test_content_type_and_size_limits(iris: ServerProcess) -> None:
    body = orjson.dumps({"features": SETOSA})
    wrong_type = httpx.post(
        iris.url + "/predict", content=body, headers={"Content-Type": "text/plain"}
    )
    assert wrong_type.status_code == 415
    assert "application/json" in wrong_type.json()["detail"]
    too_big = httpx.post(iris.url + "/predict", content=b" " * 30000, headers=JSON)
    assert too_big.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must hold while streaming
        for _ in range(30):
            yield b" " * 1000

    streamed = httpx.post(iris.url + "/predict", content=chunks(), headers=JSON)
    assert streamed.status_code == 413
    gzip = httpx.post(
        iris.url + "/predict", content=body, headers={**JSON, "Content-Encoding": "gzip"}
    )
    assert gzip.status_code == 415


def test_unknown_route_and_method(iris: ServerProcess) -> None:
    missing = httpx.get(iris.url + "/nope")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Not Found"}
    wrong_method = httpx.get(iris.url + "/predict")
    assert wrong_method.status_code == 405


def test_metrics_names_and_bounded_labels(iris: ServerProcess) -> None:
    post(iris, "/predict", {"features": SETOSA})
    for i in range(5):
        httpx.get(f"{iris.url}/scanner-{i}")
    text = httpx.get(iris.url + "/metrics").text
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
        'model_info{name="iris-classifier",source="registry",variant="champion",version="1"} 1.0'
        in text
    )
    assert 'model_inference_seconds_bucket{le="1e-05",variant="champion"}' in text


def test_openapi_document_and_offline_docs(iris: ServerProcess) -> None:
    document = httpx.get(iris.url + "/openapi.json").json()
    assert document["openapi"].startswith("3.")
    for path in ("/health", "/ready", "/predict", "/model/info", "/metrics", "/drift", "/v2",
                 "/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer"):  # fmt: skip
        assert path in document["paths"]
    features = document["components"]["schemas"]["Features"]
    assert features["required"] == list(SETOSA)
    page = httpx.get(iris.url + "/docs")
    assert page.status_code == 200
    assert "/openapi.json" in page.text
    assert "http" not in page.text.split("<body>")[1].replace("/openapi.json", "")  # no CDN
    bundle = httpx.get(iris.url + "/docs/assets/swagger-ui-bundle.js")
    assert bundle.status_code == 200
    assert len(bundle.content) > 100_000


def test_oip_server_endpoints(iris: ServerProcess) -> None:
    metadata = httpx.get(iris.url + "/v2").json()
    assert metadata["name"] == "mlops-model-server"
    assert metadata["extensions"] == []
    assert httpx.get(iris.url + "/v2/health/live").json() == {"live": True}
    assert httpx.get(iris.url + "/v2/health/ready").status_code == 200


def test_oip_model_metadata_and_ready(iris: ServerProcess) -> None:
    for path in ("/v2/models/iris-classifier", "/v2/models/iris-classifier/versions/1"):
        metadata = httpx.get(iris.url + path).json()
        assert metadata["name"] == "iris-classifier"
        assert metadata["versions"] == ["1"]
        assert metadata["platform"] == "onnxruntime_onnx"
        assert metadata["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]
        assert {o["name"]: o["datatype"] for o in metadata["outputs"]} == {
            "label": "INT64",
            "probabilities": "FP32",
        }
        ready = httpx.get(iris.url + path + "/ready")
        assert ready.json() == {"name": "iris-classifier", "ready": True}


@pytest.mark.parametrize("nested", [False, True])
@pytest.mark.parametrize("datatype", ["FP32", "FP64"])
def test_oip_infer(iris: ServerProcess, nested: bool, datatype: str) -> None:
    rows = [list(SETOSA.values()), list(VIRGINICA.values())]
    data = rows if nested else [v for row in rows for v in row]
    request = {
        "id": "42",
        "inputs": [{"name": "input", "shape": [2, 4], "datatype": datatype, "data": data}],
    }
    response = post(iris, "/v2/models/iris-classifier/versions/1/infer", request)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == "iris-classifier"
    assert body["model_version"] == "1"
    assert body["id"] == "42"
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["label"]["data"] == [0, 2]
    assert outputs["label"]["datatype"] == "INT64"
    assert outputs["probabilities"]["shape"] == [2, 3]
    assert len(outputs["probabilities"]["data"]) == 6
    assert abs(sum(outputs["probabilities"]["data"][:3]) - 1) < 1e-5


def test_oip_requested_outputs(iris: ServerProcess) -> None:
    request = {
        "inputs": [
            {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": list(SETOSA.values())}
        ],
        "outputs": [{"name": "probabilities"}],
    }
    body = post(iris, "/v2/models/iris-classifier/infer", request).json()
    assert [o["name"] for o in body["outputs"]] == ["probabilities"]
    assert "id" not in body


@pytest.mark.parametrize(
    ("path", "tensor", "status", "fragment"),
    [
        ("/v2/models/other/infer", {}, 404, "other"),
        ("/v2/models/iris-classifier/versions/9/infer", {}, 404, "version"),
        ("/v2/models/iris-classifier/infer", {"name": "x"}, 400, "input"),
        ("/v2/models/iris-classifier/infer", {"datatype": "INT8"}, 400, "datatype"),
        ("/v2/models/iris-classifier/infer", {"shape": [1, 3]}, 400, "shape"),
        ("/v2/models/iris-classifier/infer", {"shape": [2, 4]}, 400, "8 numbers"),
        (
            "/v2/models/iris-classifier/infer",
            {"data": ["5.1", "3.5", "1.4", "0.2"]},
            400,
            "numbers",
        ),
        ("/v2/models/iris-classifier/infer", {"data": [[1, 2], [3]]}, 400, "data"),
        ("/v2/models/iris-classifier/infer", {"data": [1e300, 1, 1, 1]}, 400, "finite"),
        ("/v2/models/iris-classifier/infer", {"shape": [51, 4], "data": [1.0] * 204}, 413, "limit"),
    ],
)
def test_oip_errors(
    iris: ServerProcess, path: str, tensor: dict[str, object], status: int, fragment: str
) -> None:
    base = {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": list(SETOSA.values())}
    response = post(iris, path, {"inputs": [{**base, **tensor}]})
    assert response.status_code == status, response.text
    assert fragment in response.json()["error"]


def test_oip_metadata_unknown_model(iris: ServerProcess) -> None:
    response = httpx.get(iris.url + "/v2/models/nope")
    assert response.status_code == 404
    assert "nope" in response.json()["error"]
    assert (
        httpx.post(
            iris.url + "/v2/models/iris-classifier/infer", content=b"{", headers=JSON
        ).status_code
        == 400
    )


@pytest.mark.parametrize("name", ["wine-classifier", "diabetes-regressor"])
def test_other_models_by_model_uri_alone(
    trained_store: TrainedStore, tmp_path: Path, name: str
) -> None:
    metadata = orjson.loads((trained_store.exported[name] / "metadata.json").read_bytes())
    row = metadata["input_example"][0]
    env = {
        "MLFLOW_TRACKING_URI": trained_store.tracking_uri,
        "MODEL_URI": f"models:/{name}@production",
    }
    with model_server(env, tmp_path) as server:
        info = httpx.get(server.url + "/model/info").json()
        assert info["name"] == name
        assert info["features"] == metadata["features"]
        body = post(
            server, "/predict", {"features": dict(zip(metadata["features"], row, strict=True))}
        ).json()
        if name == "diabetes-regressor":
            assert isinstance(body["prediction"], float)
            assert "confidence" not in body
            session = ort.InferenceSession(
                str(trained_store.exported[name] / "model.onnx"), providers=["CPUExecutionProvider"]
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


def test_local_path_model_uri(trained_store: TrainedStore, tmp_path: Path) -> None:
    env = {"MODEL_URI": str(trained_store.exported["iris-classifier"])}
    with model_server(env, tmp_path) as server:
        info = httpx.get(server.url + "/model/info").json()
        assert info["source"] == "local"
        assert info["version"] == "1"
        assert post(server, "/predict", {"features": SETOSA}).json()["prediction"] == "setosa"
