"""MLflow's scoring protocol in process: every request form, CSV, /ping, /version and each error.

The answers are held to what `mlflow models serve` gives for the same model in
tests/integration/test_protocol_clients.py; here, to the model itself.
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

FEATURES = list(SETOSA)
ROWS = [list(SETOSA.values()), list(VIRGINICA.values())]
RECORDS = [SETOSA, VIRGINICA]
KEY = "mlflow-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
JSON = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def iris(model_dirs: dict[str, Path]) -> Iterator[TestClient]:
    settings = Settings(
        model_uri=str(model_dirs["iris"]), max_batch=1000, api_keys=frozenset({KEY})
    )
    with serve(settings) as client:
        yield client


@pytest.fixture(scope="module")
def diabetes(model_dirs: dict[str, Path]) -> Iterator[TestClient]:
    with serve(Settings(model_uri=str(model_dirs["diabetes"]))) as client:
        yield client


def invoke(client: TestClient, body: Any, headers: dict[str, str] = JSON) -> Any:
    content = body if isinstance(body, bytes | str) else orjson.dumps(body)
    return client.post("/invocations", content=content, headers=headers)


@pytest.mark.parametrize(
    "body",
    [
        {"dataframe_split": {"columns": FEATURES, "data": ROWS}},
        {"dataframe_split": {"index": [0, 1], "columns": FEATURES, "data": ROWS}},
        # Columns in another order, and one the model does not take (ignored, as MLflow does).
        {"dataframe_split": {"columns": ["id", *FEATURES[::-1]],
                             "data": [["a", *row[::-1]] for row in ROWS]}},
        {"dataframe_records": RECORDS},
        {"dataframe_records": [{**r, "extra": 1} for r in RECORDS]},
        {"instances": RECORDS},
        {"instances": ROWS},
        {"inputs": ROWS},
        {"inputs": {name: [r[name] for r in RECORDS] for name in FEATURES}},
        {"instances": {name: [r[name] for r in RECORDS] for name in FEATURES}},
        {"dataframe_records": RECORDS, "params": {"unused": 1}},
    ],
)  # fmt: skip
def test_every_request_form_answers_the_models_labels(iris: TestClient, body: Any) -> None:
    response = invoke(iris, body)
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [0, 2]}
    assert response.headers["x-model-version"] == "1"


def test_csv_as_mlflow_reads_it(iris: TestClient) -> None:
    text = (
        ",".join(f'"{f}"' for f in FEATURES) + "\n" + "\n".join(",".join(map(str, r)) for r in ROWS)
    )
    response = invoke(iris, text, {**JSON, "Content-Type": "text/csv"})
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [0, 2]}


def test_a_thousand_rows(iris: TestClient, model_dirs: dict[str, Path]) -> None:
    rows = np.random.default_rng(7).uniform(0.1, 8, (1000, 4)).round(2)
    response = invoke(iris, {"dataframe_split": {"columns": FEATURES, "data": rows.tolist()}})
    assert response.status_code == 200
    session = ort.InferenceSession(str(model_dirs["iris"] / "model.onnx"))
    expected = session.run(["label"], {"input": rows.astype(np.float32)})[0]
    assert response.json()["predictions"] == expected.tolist()


def test_a_regressor_answers_its_values(diabetes: TestClient, model_dirs: dict[str, Path]) -> None:
    metadata = orjson.loads((model_dirs["diabetes"] / "metadata.json").read_bytes())
    rows = metadata["input_example"]
    response = invoke(
        diabetes, {"dataframe_split": {"columns": metadata["features"], "data": rows}}
    )
    assert response.status_code == 200, response.text
    session = ort.InferenceSession(str(model_dirs["diabetes"] / "model.onnx"))
    expected = session.run(None, {"input": np.asarray(rows, np.float32)})[0].ravel()
    assert np.allclose(response.json()["predictions"], expected, rtol=1e-6)


@pytest.mark.parametrize(
    ("body", "code", "fragment"),
    [
        (b"{not json", "BAD_REQUEST", "malformed JSON"),
        ([1, 2], "BAD_REQUEST", "Received a list"),
        ({"columns": FEATURES}, "BAD_REQUEST", "exactly one of the input fields"),
        ({"instances": ROWS, "inputs": ROWS}, "BAD_REQUEST", "exactly one"),
        ({"instances": ROWS, "params": [1]}, "BAD_REQUEST", "params"),
        ({"dataframe_split": ROWS}, "BAD_REQUEST", "split"),
        ({"dataframe_split": {"columns": FEATURES[1:], "data": [r[1:] for r in ROWS]}},
         "INVALID_PARAMETER_VALUE", "missing inputs ['sepal length (cm)']"),
        ({"dataframe_split": {"columns": FEATURES, "data": [[1, 2, 3]]}},
         "INVALID_PARAMETER_VALUE", "4 numbers"),
        ({"dataframe_split": {"columns": FEATURES[::-1], "data": [dict(zip("abcd", range(4), strict=True))]}},
         "INVALID_PARAMETER_VALUE", "each a list of values"),
        ({"dataframe_split": {"columns": FEATURES[::-1], "data": ["abcd"]}},
         "INVALID_PARAMETER_VALUE", "each a list of values"),
        ({"dataframe_records": [{k: v for k, v in SETOSA.items() if k != "petal width (cm)"}]},
         "INVALID_PARAMETER_VALUE", "missing inputs ['petal width (cm)']"),
        ({"dataframe_records": [{**SETOSA, "petal width (cm)": None}]},
         "INVALID_PARAMETER_VALUE", "numbers"),
        ({"dataframe_records": [{**SETOSA, "petal width (cm)": "wide"}]},
         "INVALID_PARAMETER_VALUE", "numbers"),
        ({"dataframe_records": []}, "INVALID_PARAMETER_VALUE", "no rows"),
        ({"dataframe_records": [1, 2]}, "INVALID_PARAMETER_VALUE", "list of objects"),
        ({"instances": [[1, 2, 3]]}, "INVALID_PARAMETER_VALUE", "4 numbers"),
        ({"instances": [[1e39, 1, 1, 1]]}, "INVALID_PARAMETER_VALUE", "finite"),
        (b'{"instances": [[NaN, 1, 1, 1]]}', "INVALID_PARAMETER_VALUE", "finite"),
        ({"inputs": {FEATURES[0]: [1.0]}}, "INVALID_PARAMETER_VALUE", "missing inputs"),
        ({"inputs": {f: [1.0] * (i + 1) for i, f in enumerate(FEATURES)}},
         "INVALID_PARAMETER_VALUE", "same number"),
        ({"inputs": {f: 1.0 for f in FEATURES}}, "INVALID_PARAMETER_VALUE", "list of values"),
    ],
)  # fmt: skip
def test_every_bad_request_is_400_with_mlflows_error_body(
    iris: TestClient, body: Any, code: str, fragment: str
) -> None:
    response = invoke(iris, body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert list(error) == ["error_code", "message"]
    assert error["error_code"] == code
    assert fragment in error["message"]


def test_too_many_rows_and_bad_content_types(iris: TestClient) -> None:
    too_many = invoke(iris, {"instances": ROWS * 501})
    assert too_many.status_code == 413
    assert too_many.json()["error_code"] == "RESOURCE_EXHAUSTED"
    parquet = invoke(iris, b"PAR1", {**JSON, "Content-Type": "application/vnd.apache.parquet"})
    assert parquet.status_code == 415
    assert parquet.json()["error_code"] == "BAD_REQUEST"
    bad_csv = invoke(iris, "a,b\n1,x\n", {**JSON, "Content-Type": "text/csv"})
    assert bad_csv.status_code == 400
    assert invoke(iris, "only a header\n", {**JSON, "Content-Type": "text/csv"}).status_code == 400
    assert invoke(iris, b"\xff\xfe", {**JSON, "Content-Type": "text/csv"}).status_code == 400


def test_keys_are_checked_and_refused_in_mlflows_shape(iris: TestClient) -> None:
    response = invoke(iris, {"instances": ROWS}, {"Content-Type": "application/json"})
    assert response.status_code == 401
    assert response.json()["error_code"] == "UNAUTHENTICATED"
    # The health check and the version stay open, as probes need them.
    assert iris.get("/ping").status_code == 200


def test_ping_and_version(iris: TestClient) -> None:
    ping = iris.get("/ping")
    assert (ping.status_code, ping.text) == (200, "\n")
    version = iris.get("/version", headers=AUTH)
    assert version.status_code == 200
    assert iris.get("/version").status_code == 401  # metadata, unless OPEN_ROUTES names it
    assert version.text.count(".") == 2


def test_ping_is_503_until_a_model_is_served(tmp_path: Path) -> None:
    with serve(Settings(model_uri=str(tmp_path / "missing"), retry_seconds=60)) as client:
        response = client.get("/ping")
        assert response.status_code == 503
        assert response.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"


def test_a_wrong_method_and_an_unknown_path_answer_in_mlflows_shape(iris: TestClient) -> None:
    wrong = iris.get("/invocations")
    assert wrong.status_code == 405
    assert set(wrong.json()) == {"error_code", "message"}
