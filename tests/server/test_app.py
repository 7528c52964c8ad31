"""The whole app in process: every route against the OpenAPI document it serves, and CORS.

The document is generated from the route table; these tests hold the running app to it: every
route's answer to a good request, and to every kind of bad one, must be a documented status with
a body that validates against the documented schema.
"""

import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import orjson
import pytest
from starlette.testclient import TestClient

from server.contract import largest_accepted
from server.routes import Route
from server.settings import Settings
from tests.samples import SETOSA
from tests.server.conftest import serve

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
PARAMS = {"{name}": "iris-classifier", "{version}": "1"}
FEEDBACK_FOR = "documented-request"
BODIES: dict[str, Any] = {
    "PredictRequest": {"features": SETOSA},
    "FeedbackRequest": {"request_id": FEEDBACK_FOR, "label": "setosa"},
    "InferenceRequest": {
        "inputs": [
            {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}
        ]
    },
    "MlflowRequest": {
        "dataframe_split": {"columns": list(SETOSA), "data": [list(SETOSA.values())]}
    },
    "V1Request": {"instances": [list(SETOSA.values())]},
}


@pytest.fixture(scope="module")
def app(
    model_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    store = tmp_path_factory.mktemp("app-store") / "predictions.db"
    settings = Settings(
        model_uri=str(model_dirs["iris"]),
        api_keys=frozenset({KEY}),
        record_predictions=True,
        prediction_store_uri=f"sqlite:///{store}",
        record_flush_seconds=0.02,
    )
    with serve(settings) as client:
        # The prediction FeedbackRequest refers to, recorded before any test sends feedback.
        headers = {**AUTH, "X-Request-ID": FEEDBACK_FOR}
        assert client.post("/predict", json=BODIES["PredictRequest"], headers=headers).is_success
        deadline = time.monotonic() + 10
        while client.post("/feedback", json=BODIES["FeedbackRequest"], headers=AUTH).is_error:
            assert time.monotonic() < deadline, "the prediction was not recorded"
            time.sleep(0.02)
        yield client


@pytest.fixture(scope="module")
def document(app: TestClient) -> dict[str, Any]:
    response = app.get("/openapi.json", headers=AUTH)
    assert response.status_code == 200
    return dict(response.json())


def table(app: TestClient) -> list[Route]:
    return list(app.app.table.routes)  # type: ignore[attr-defined]


def concrete(path: str) -> str:
    for template, value in PARAMS.items():
        path = path.replace(template, value)
    return path


def check(document: dict[str, Any], route: Route, status: int, response: Any) -> None:
    """The status is documented for this route and the body validates against its schema."""
    operation = document["paths"][route.path][route.method.lower()]
    assert str(status) in operation["responses"], (route.path, status, response.text)
    content = operation["responses"][str(status)]["content"]
    media_type = response.headers["content-type"].split(";")[0]
    assert media_type in content, (route.path, media_type)
    if media_type != "application/json":
        return
    schema = {**content[media_type]["schema"], "components": document["components"]}
    jsonschema.validate(response.json(), schema)


def request(client: TestClient, route: Route, body: Any = None, **kwargs: Any) -> Any:
    if route.body is not None and body is None:
        body = BODIES[route.body]
    content = orjson.dumps(body) if body is not None and not isinstance(body, bytes) else body
    headers = {"Content-Type": "application/json", **AUTH, **kwargs.pop("headers", {})}
    return client.request(route.method, concrete(route.path), content=content, headers=headers,
                          **kwargs)  # fmt: skip


def test_every_documented_route_is_served_and_every_served_route_documented(
    app: TestClient, document: dict[str, Any]
) -> None:
    served = {(r.method.lower(), r.path) for r in table(app) if r.in_schema}
    documented = {
        (method, path)
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters"
    }
    assert served == documented
    # 15 for inference and metadata, /feedback and /quality, 3 of MLflow's, 3 of KServe V1's
    assert len(served) == 23


def test_every_route_answers_a_good_request_as_documented(
    app: TestClient, document: dict[str, Any]
) -> None:
    for route in table(app):
        if route.in_schema:
            response = request(app, route)
            assert response.status_code == 200, (route.path, response.text)
            check(document, route, 200, response)


def bad_requests(route: Route) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every kind of bad request this route can get, as keyword arguments for `request`."""
    if route.needs_key:
        yield "no key", {"headers": {"Authorization": ""}}
        yield "wrong key", {"headers": {"Authorization": "Bearer nope"}}
    if "{name}" in route.path:
        yield "unknown model", {"path_params": {"{name}": "no-such-model"}}
    if "{version}" in route.path:
        yield "unknown version", {"path_params": {"{version}": "99"}}
    if route.body is not None:
        yield "malformed JSON", {"body": b"{not json"}
        yield "empty body", {"body": b""}
        yield "not JSON", {"body": b"a=1", "headers": {"Content-Type": "text/plain"}}
        yield "compressed", {"headers": {"Content-Encoding": "gzip"}}
        yield "too large", {"body": b"[" + b"1," * 600_000 + b"1]"}
        yield "wrong shape", {"body": {"rows": []}}
        yield "not a number", {"body": _with_value(route, "five")}
        yield "NaN", {"body": b'{"features": {"sepal length (cm)": NaN}}'}
        yield "past float32", {"body": _with_value(route, 3.5e38)}


def _with_value(route: Route, value: Any) -> Any:
    if route.body == "PredictRequest":
        return {"features": {**SETOSA, "sepal length (cm)": value}}
    if route.body == "FeedbackRequest":  # a number for a prediction that was a class
        return {"request_id": FEEDBACK_FOR, "value": value}
    assert route.body is not None
    body = orjson.loads(orjson.dumps(BODIES[route.body]))
    if route.body == "MlflowRequest":
        body["dataframe_split"]["data"][0][0] = value
    elif route.body == "V1Request":
        body["instances"][0][0] = value
    else:
        body["inputs"][0]["data"][0] = value
    return body


def test_every_bad_request_to_every_route_is_a_documented_4xx_in_its_protocols_shape(
    app: TestClient, document: dict[str, Any]
) -> None:
    seen = 0
    for route in table(app):
        if not route.in_schema:
            continue
        for what, kwargs in bad_requests(route):
            params = {**PARAMS, **kwargs.pop("path_params", {})}
            path = route.path
            for template, value in params.items():
                path = path.replace(template, value)
            body = kwargs.pop("body", None)
            if body is None and route.body is not None:
                body = BODIES[route.body]
            content = body if isinstance(body, bytes) else orjson.dumps(body) if body else None
            headers = {"Content-Type": "application/json", **AUTH, **kwargs.pop("headers", {})}
            response = app.request(route.method, path, content=content, headers=headers)
            assert 400 <= response.status_code < 500, (route.path, what, response.text)
            check(document, route, response.status_code, response)
            assert list(response.json()) == list(route.protocol.error("x")), (route.path, what)
            seen += 1
    assert seen > 40


def test_a_wrong_method_is_405_with_allow_in_the_paths_protocol(app: TestClient) -> None:
    simple = app.get("/predict")
    assert simple.status_code == 405
    assert simple.headers["allow"] == "POST"
    assert simple.json() == {"detail": "Method Not Allowed"}
    oip = app.get("/v2/models/iris-classifier/infer")
    assert oip.status_code == 405
    assert oip.json() == {"error": "Method Not Allowed"}


@pytest.mark.parametrize("path", ["/health/", "/ready/", "/predict/", "/v2/", "/docs/",
                                  "//evil.example/"])  # fmt: skip
@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "testserver"])
def test_no_trailing_slash_redirect_points_anywhere(app: TestClient, path: str, host: str) -> None:
    """Starlette's trailing-slash redirect copied the Host header into Location."""
    response = app.get(path, headers={"Host": host}, follow_redirects=False)
    assert not response.is_redirect, (response.status_code, response.headers.get("location"))
    assert "location" not in response.headers
    assert response.status_code in (404, 405)


def test_cors_applies_to_every_route_when_configured(model_dirs: dict[str, Path]) -> None:
    origin = "https://app.example"
    settings = Settings(model_uri=str(model_dirs["iris"]), cors_allow_origins=(origin,))
    with serve(settings) as client:
        for route in table(client):
            response = request(client, route, headers={"Origin": origin})
            assert response.headers.get("access-control-allow-origin") == origin, route.path
            assert "x-request-id" in response.headers
        preflight = client.options(
            "/predict",
            headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "authorization,content-type"},
        )  # fmt: skip
        assert preflight.status_code == 200
        assert "POST" in preflight.headers["access-control-allow-methods"]
        foreign = client.get("/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in foreign.headers


def test_no_cors_headers_unless_configured(iris_app: TestClient) -> None:
    response = iris_app.post(
        "/predict", json={"features": SETOSA}, headers={"Origin": "https://app.example"}
    )
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


def test_both_protocols_take_the_same_range_of_values(app: TestClient) -> None:
    """The largest value still finite as float32 is taken by both; the next one by neither."""
    largest = largest_accepted(np.float32)
    assert largest > float(np.finfo(np.float32).max)  # a hair past it rounds down, not to inf
    for value, expected in ((largest, 200), (math.nextafter(largest, math.inf), None)):
        simple = app.post(
            "/predict", json={"features": {**SETOSA, "sepal length (cm)": value}}, headers=AUTH
        )
        body = orjson.loads(orjson.dumps(BODIES["InferenceRequest"]))
        body["inputs"][0]["data"][0] = value
        oip = app.post("/v2/models/iris-classifier/infer", json=body, headers=AUTH)
        if expected == 200:
            assert (simple.status_code, oip.status_code) == (200, 200)
        else:
            assert (simple.status_code, oip.status_code) == (422, 400)
