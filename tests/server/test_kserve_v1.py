"""KServe V1 in process, in the request and answer forms of KServe's documentation and sklearn server.

KServe's V1 examples (docs/predict-api/v1 in kserve/kserve, and the sklearn server's tests) send
`{"instances": [[...], ...]}` and read `{"predictions": [...]}`; readiness is
`GET /v1/models/{name}` answering `{"name": ..., "ready": true}`.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import orjson
import pytest
from starlette.testclient import TestClient

from server.settings import Settings
from tests.samples import SETOSA, VIRGINICA
from tests.server.conftest import serve

PREDICT = "/v1/models/iris-classifier:predict"
ROWS = [list(SETOSA.values()), list(VIRGINICA.values())]
KEY = "v1-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def iris(model_dirs: dict[str, Path]) -> Iterator[TestClient]:
    settings = Settings(
        model_uri=str(model_dirs["iris"]), max_batch=1000, api_keys=frozenset({KEY})
    )
    with serve(settings) as client:
        yield client


def predict(
    client: TestClient, body: Any, path: str = PREDICT, headers: dict[str, str] = AUTH
) -> Any:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return client.post(
        path, content=content, headers={"Content-Type": "application/json", **headers}
    )


@pytest.mark.parametrize(
    "body", [{"instances": ROWS}, {"inputs": ROWS}, {"instances": [SETOSA, VIRGINICA]}]
)
def test_predict_answers_one_label_per_instance(iris: TestClient, body: Any) -> None:
    response = predict(iris, body)
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [0, 2]}


def test_a_thousand_instances(iris: TestClient, model_dirs: dict[str, Path]) -> None:
    rows = np.random.default_rng(3).uniform(0.1, 8, (1000, 4)).round(2)
    response = predict(iris, {"instances": rows.tolist()})
    assert response.status_code == 200
    session = ort.InferenceSession(str(model_dirs["iris"] / "model.onnx"))
    expected = session.run(["label"], {"input": rows.astype(np.float32)})[0]
    assert response.json()["predictions"] == expected.tolist()


def test_readiness_and_the_model_list(iris: TestClient) -> None:
    assert iris.get("/v1/models/iris-classifier", headers=AUTH).json() == {
        "name": "iris-classifier",
        "ready": True,
    }
    assert iris.get("/v1/models", headers=AUTH).json() == {"models": ["iris-classifier"]}
    # Model metadata, like the other protocols', needs a key unless OPEN_ROUTES names it.
    assert iris.get("/v1/models").status_code == 401
    unknown = iris.get("/v1/models/nope", headers=AUTH)
    assert unknown.status_code == 404
    assert "nope" in unknown.json()["error"]


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"{", 400, "malformed JSON"),
        ({"rows": ROWS}, 400, "instances"),
        ([1], 400, "instances"),
        ({"instances": []}, 400, "no rows"),
        ({"instances": "1,2"}, 400, "list"),
        ({"instances": [[1, 2, 3]]}, 400, "4 numbers"),
        ({"instances": [[1, None, 3, 4]]}, 400, "numbers"),
        ({"instances": [[1, 2], [3]]}, 400, "evenly nested"),
        ({"instances": [[1e39, 1, 1, 1]]}, 400, "finite"),
        ({"instances": [{"sepal length (cm)": 1}]}, 400, "missing inputs"),
        ({"instances": ROWS * 501}, 413, "limit"),
    ],
)
def test_every_bad_request_is_a_4xx_in_kserves_shape(
    iris: TestClient, body: Any, status: int, fragment: str
) -> None:
    response = predict(iris, body)
    assert response.status_code == status, response.text
    assert list(response.json()) == ["error"]
    assert fragment in response.json()["error"]


def test_an_unknown_model_is_404_and_keys_are_checked(iris: TestClient) -> None:
    assert predict(iris, {"instances": ROWS}, "/v1/models/nope:predict").status_code == 404
    refused = predict(iris, {"instances": ROWS}, headers={})
    assert refused.status_code == 401
    assert list(refused.json()) == ["error"]
    wrong = iris.get(PREDICT)
    assert wrong.status_code == 405  # the predict route's path: not a model named "...:predict"
    assert wrong.headers["allow"] == "POST"
    assert list(wrong.json()) == ["error"]


def test_not_ready_is_503(tmp_path: Path) -> None:
    with serve(Settings(model_uri=str(tmp_path / "missing"), retry_seconds=60)) as client:
        response = client.get("/v1/models/iris-classifier")
        assert response.status_code == 503
        assert list(response.json()) == ["error"]
