"""The Open Inference Protocol routes and their errors, in process."""

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


def test_oip_server_endpoints(iris: TestClient) -> None:
    metadata = iris.get("/v2").json()
    assert metadata["name"] == "mlops-model-server"
    assert metadata["extensions"] == []
    assert iris.get("/v2/health/live").json() == {"live": True}
    assert iris.get("/v2/health/ready").status_code == 200


def test_oip_model_metadata_and_ready(iris: TestClient) -> None:
    for path in ("/v2/models/iris-classifier", "/v2/models/iris-classifier/versions/1"):
        metadata = iris.get(path).json()
        assert metadata["name"] == "iris-classifier"
        assert metadata["versions"] == ["1"]
        assert metadata["platform"] == "onnxruntime_onnx"
        assert metadata["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]
        assert {o["name"]: o["datatype"] for o in metadata["outputs"]} == {
            "label": "INT64",
            "probabilities": "FP32",
        }
        ready = iris.get(path + "/ready")
        assert ready.json() == {"name": "iris-classifier", "ready": True}


@pytest.mark.parametrize("nested", [False, True])
@pytest.mark.parametrize("datatype", ["FP32", "FP64"])
def test_oip_infer(iris: TestClient, nested: bool, datatype: str) -> None:
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


def test_oip_requested_outputs(iris: TestClient) -> None:
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
    iris: TestClient, path: str, tensor: dict[str, object], status: int, fragment: str
) -> None:
    base = {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": list(SETOSA.values())}
    response = post(iris, path, {"inputs": [{**base, **tensor}]})
    assert response.status_code == status, response.text
    assert fragment in response.json()["error"]


def test_oip_metadata_unknown_model(iris: TestClient) -> None:
    response = iris.get("/v2/models/nope")
    assert response.status_code == 404
    assert "nope" in response.json()["error"]
    assert (
        iris.post("/v2/models/iris-classifier/infer", content=b"{", headers=JSON).status_code == 400
    )
