"""Hostile bodies and clients: each is refused or bounded, never a 5xx, never at others' expense."""

import gzip
import socket
import threading
import time
import zlib
from collections.abc import Iterator

import httpx
import orjson
import pytest

from tests.conftest import TrainedStore
from tests.integration.checks import server_errors
from tests.integration.rawhttp import open_request, read_response, trickle
from tests.processes import ServerProcess, model_server
from tests.samples import SETOSA, VIRGINICA

pytestmark = pytest.mark.integration

JSON = {"Content-Type": "application/json"}
MAX_BODY = 200_000
BODY_TIMEOUT = 2.0
OIP_PATH = "/v2/models/iris-classifier/infer"


@pytest.fixture(scope="module")
def iris(
    trained_store: TrainedStore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    env = {
        "MLFLOW_TRACKING_URI": trained_store.tracking_uri,
        "MAX_BODY_BYTES": str(MAX_BODY),
        "BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
    }
    with model_server(env, tmp_path_factory.mktemp("hostile")) as server:
        yield server
        assert server_errors(server.log()) == []


def raw_post(server: ServerProcess, path: str, body: bytes, **headers: str) -> httpx.Response:
    return httpx.post(server.url + path, content=body, headers={**JSON, **headers}, timeout=30)


def features(**overrides: object) -> dict[str, object]:
    return {**SETOSA, **overrides}


def oip(data: object, shape: object = (1, 4)) -> bytes:
    tensor = {"name": "input", "shape": list(shape), "datatype": "FP32", "data": data}  # type: ignore[call-overload]
    return orjson.dumps({"inputs": [tensor]})


def nested(depth: int, inner: bytes = b"1") -> bytes:
    return b"[" * depth + inner + b"]" * depth


@pytest.mark.parametrize("depth", [10, 200, 1000, 1100, 5000, 90_000])
@pytest.mark.parametrize("where", ["body", "feature", "oip-data"])
def test_deeply_nested_json(iris: ServerProcess, depth: int, where: str) -> None:
    if where == "body":
        response = raw_post(iris, "/predict", nested(depth))
    elif where == "feature":
        body = orjson.dumps({"features": features()}).replace(b"5.1", nested(depth, b"5.1"))
        response = raw_post(iris, "/predict", body)
    else:
        response = raw_post(iris, OIP_PATH, oip([0]).replace(b"[0]", nested(depth, b"0")))
    assert response.status_code in (400, 422), response.text
    assert httpx.get(iris.url + "/health").status_code == 200


@pytest.mark.parametrize(
    "value",
    [b"1e999", b"-1e999", b"1" + b"0" * 400, b"-" + b"9" * 4000, b"9" * 100_000, b"3.5e38"],
)
def test_huge_numbers(iris: ServerProcess, value: bytes) -> None:
    simple = orjson.dumps({"features": features()}).replace(b"5.1", value)
    assert raw_post(iris, "/predict", simple).status_code in (400, 422)
    tensor = oip([5.1, 3.5, 1.4, 0.2]).replace(b"5.1", value)
    assert raw_post(iris, OIP_PATH, tensor).status_code == 400


@pytest.mark.parametrize("value", [b"1e-999", b"0.000000000000000000000000000001", b"-0"])
def test_tiny_numbers_are_just_numbers(iris: ServerProcess, value: bytes) -> None:
    simple = orjson.dumps({"features": features()}).replace(b"5.1", value)
    assert raw_post(iris, "/predict", simple).status_code == 200


@pytest.mark.parametrize("length", [1_000, 150_000])
def test_very_long_feature_names(iris: ServerProcess, length: int) -> None:
    name = "n" * length
    response = raw_post(iris, "/predict", orjson.dumps({"features": {**SETOSA, name: 1.0}}))
    assert response.status_code == 400
    assert "unknown feature" in response.json()["detail"]
    assert len(response.content) < 1000  # the name is truncated, not echoed whole
    tensor = orjson.dumps(
        {"inputs": [{"name": name, "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
    )
    assert len(raw_post(iris, OIP_PATH, tensor).content) < 1000
    assert len(httpx.get(f"{iris.url}/v2/models/{name[:5000]}").content) < 1000


def test_many_keys(iris: ServerProcess) -> None:
    crowd = {f"k{i}": i for i in range(10_000)}
    response = raw_post(iris, "/predict", orjson.dumps({"features": {**SETOSA, **crowd}}))
    assert response.status_code == 400


def test_duplicate_keys_last_one_wins(iris: ServerProcess) -> None:
    """JSON leaves duplicate names undefined; the server keeps the last, like most parsers."""
    inner = orjson.dumps(SETOSA)[:-1] + b"," + orjson.dumps(VIRGINICA)[1:]
    single = raw_post(iris, "/predict", b'{"features": ' + inner + b"}")
    assert single.status_code == 200
    assert single.json()["prediction"] == "virginica"
    twice = b'{"features": %s, "features": %s}' % (orjson.dumps(SETOSA), orjson.dumps(VIRGINICA))
    assert raw_post(iris, "/predict", twice).json()["prediction"] == "virginica"


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "GZIP", "identity, gzip"])
def test_compressed_bodies_are_refused_unread(iris: ServerProcess, encoding: str) -> None:
    bomb = gzip.compress(b"0" * 50_000_000, compresslevel=9)  # 50 MB of zeros in ~50 kB
    if encoding == "deflate":
        bomb = zlib.compress(b"0" * 50_000_000, 9)
    response = raw_post(iris, "/predict", bomb, **{"Content-Encoding": encoding})
    assert response.status_code == 415
    assert "compressed" in response.json()["detail"]


def test_identity_encoding_is_fine(iris: ServerProcess) -> None:
    body = orjson.dumps({"features": SETOSA})
    assert raw_post(iris, "/predict", body, **{"Content-Encoding": "identity"}).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        b'{"features": {"sepal length (cm)": "\xff\xfe"}}',  # invalid UTF-8
        b'{"features": {"\\ud800": 1}}',  # a lone surrogate
        b"\x00" * 100,
        b'{"features": {}}' + b" " * 100 + b"{}",  # trailing data
    ],
)
def test_malformed_text(iris: ServerProcess, body: bytes) -> None:
    response = raw_post(iris, "/predict", body)
    assert 400 <= response.status_code < 500


def test_a_byte_order_mark_is_tolerated(iris: ServerProcess) -> None:
    body = b"\xef\xbb\xbf" + orjson.dumps({"features": SETOSA})
    assert raw_post(iris, "/predict", body).status_code == 200


def test_oversized_headers_and_lying_lengths(iris: ServerProcess) -> None:
    huge = httpx.get(iris.url + "/health", headers={"X-Padding": "a" * 200_000})
    assert 400 <= huge.status_code < 500 or huge.status_code == 200
    for declared, expected in ((10**20, 400), (10**9, 413)):  # httptools refuses the first
        lying = open_request(iris.url, "/predict", declared)
        lying.sendall(b"{}")
        assert read_response(lying)[0] == expected
        lying.close()
    assert httpx.get(iris.url + "/health").status_code == 200


def test_a_mid_body_hang_up_harms_nobody(iris: ServerProcess) -> None:
    for _ in range(20):
        sock = open_request(iris.url, "/predict", 1000)
        sock.sendall(b'{"features": {')
        sock.close()
    assert raw_post(iris, "/predict", orjson.dumps({"features": SETOSA})).status_code == 200


def test_idle_connections_do_not_block_others(iris: ServerProcess) -> None:
    host, port = iris.url.removeprefix("http://").split(":")
    idle = [socket.create_connection((host, int(port))) for _ in range(200)]
    try:
        started = time.perf_counter()
        for _ in range(20):
            assert raw_post(iris, "/predict", orjson.dumps({"features": SETOSA})).status_code == 200
        assert time.perf_counter() - started < 5
    finally:
        for sock in idle:
            sock.close()


def test_byte_by_byte_client_is_cut_off_while_others_are_served(iris: ServerProcess) -> None:
    """A body trickled past BODY_TIMEOUT_SECONDS gets 408; a fast client meanwhile is unaffected."""
    body = orjson.dumps({"features": SETOSA})
    slow_results: list[tuple[int, dict[str, str]]] = []

    def slow_client() -> None:
        sock = open_request(iris.url, "/predict", len(body))
        trickle(sock, body, BODY_TIMEOUT * 2 / len(body))  # twice too slow
        slow_results.append(read_response(sock)[:2])
        sock.close()

    slowpokes = [threading.Thread(target=slow_client) for _ in range(5)]
    for thread in slowpokes:
        thread.start()
    latencies = []
    deadline = time.monotonic() + BODY_TIMEOUT * 1.5
    with httpx.Client() as client:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            response = client.post(iris.url + "/predict", content=body, headers=JSON)
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 200
    for thread in slowpokes:
        thread.join(timeout=BODY_TIMEOUT * 4)
    assert [status for status, _ in slow_results] == [408] * 5
    assert all(headers.get("connection") == "close" for _, headers in slow_results)
    latencies.sort()
    assert len(latencies) > 100
    assert latencies[int(len(latencies) * 0.99)] < 0.25, latencies[-10:]


def test_slow_but_in_time_client_is_served(iris: ServerProcess) -> None:
    body = orjson.dumps({"features": SETOSA})
    sock = open_request(iris.url, "/predict", len(body))
    assert trickle(sock, body, BODY_TIMEOUT * 0.4 / len(body))
    status, _, answer = read_response(sock)
    sock.close()
    assert status == 200
    assert orjson.loads(answer)["prediction"] == "setosa"


def test_an_output_named_many_times_is_refused_not_amplified(iris: ServerProcess) -> None:
    """Each copy was serialised in full: 1 MB of request made an 803 MB answer."""
    payload = orjson.loads(oip([5.1, 3.5, 1.4, 0.2]))
    payload["outputs"] = [{"name": "probabilities"}] * 4000
    response = raw_post(iris, OIP_PATH, orjson.dumps(payload))
    assert response.status_code == 400
    assert "named twice" in response.json()["error"]
    assert len(response.content) < 300
    payload["outputs"] = [{"name": "probabilities"}, {"name": "label"}]
    assert raw_post(iris, OIP_PATH, orjson.dumps(payload)).status_code == 200


@pytest.mark.parametrize("request_id", [b'"\\ud800"', b'"a\\udfffb"', b'"\\udc00\\ud800"'])
def test_a_lone_surrogate_in_the_echoed_id_is_a_client_error(
    iris: ServerProcess, request_id: bytes
) -> None:
    body = oip([5.1, 3.5, 1.4, 0.2])[:-1] + b', "id": ' + request_id + b"}"
    response = raw_post(iris, OIP_PATH, body)
    assert response.status_code == 400, response.text
    assert "surrogate" in response.json()["error"]


def test_a_large_body_ending_in_nan_names_the_value(iris: ServerProcess) -> None:
    rows = [features()] * 999
    body = orjson.dumps({"instances": rows})[:-2] + b', {"sepal length (cm)": 5.1, ' \
        b'"sepal width (cm)": NaN, "petal length (cm)": 1.4, "petal width (cm)": 0.2}]}'  # fmt: skip
    response = raw_post(iris, "/predict", body)
    assert response.status_code == 422
    assert "instances[999]" in response.json()["detail"]
    assert "NaN" in response.json()["detail"]
    oip_body = oip([5.1, 3.5, 1.4, 0.2]).replace(b"3.5", b"NaN")
    assert raw_post(iris, OIP_PATH, oip_body).status_code == 400


def test_methods_a_client_invents_do_not_grow_the_metrics(iris: ServerProcess) -> None:
    """The parser knows some thirty methods; times every route, /metrics grew 80-fold."""
    methods = ["PROPFIND", "MKCOL", "PURGE", "LINK", "UNLINK", "M-SEARCH", "SUBSCRIBE", "ACL"]
    for method in methods:
        for path in ("/health", "/predict", "/v2/models/x/infer", "/nowhere"):
            assert httpx.request(method, iris.url + path).status_code in (404, 405)
    text = httpx.get(iris.url + "/metrics").text
    assert 'http_requests_total{method="OTHER",route="/health",status="405"} 8.0' in text
    for method in methods:
        assert f'method="{method}"' not in text


@pytest.mark.parametrize("path", ["/health/", "/ready/", "/v2/", "//evil.example/", "/docs/"])
def test_no_redirect_points_at_the_host_header(iris: ServerProcess, path: str) -> None:
    host, port = iris.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: evil.example\r\n\r\n".encode())
        status, headers, _ = read_response(sock)
    assert status == 404
    assert "location" not in headers
