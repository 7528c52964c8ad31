"""The OIP binary tensor data extension, with bodies built and answers read by Triton's own client.

`tritonclient.http` builds a request body exactly as it sends it (`generate_request_body`) and
parses an answer exactly as it reads one (`InferResult.from_response_body`), so these tests speak
the client's bytes in process; tests/integration/test_protocol_clients.py drives it over sockets.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import orjson
import pytest
import tritonclient.http as triton
from starlette.testclient import TestClient

from server.settings import Settings
from tests.samples import SETOSA, VIRGINICA
from tests.server.conftest import serve

INFER = "/v2/models/iris-classifier/infer"
ROWS = np.array([list(SETOSA.values()), list(VIRGINICA.values())], dtype=np.float32)


@pytest.fixture(scope="module")
def iris(model_dirs: dict[str, Path]) -> Iterator[TestClient]:
    with serve(Settings(model_uri=str(model_dirs["iris"]), max_batch=1000)) as client:
        yield client


@pytest.fixture(scope="module")
def session(model_dirs: dict[str, Path]) -> ort.InferenceSession:
    return ort.InferenceSession(
        str(model_dirs["iris"] / "model.onnx"), providers=["CPUExecutionProvider"]
    )


def triton_request(
    rows: np.ndarray, datatype: str = "FP32", outputs: list[Any] | None = None, **kwargs: Any
) -> tuple[bytes, dict[str, str]]:
    """The body and headers tritonclient.http sends, in its default (binary) mode."""
    tensor = triton.InferInput("input", list(rows.shape), datatype)
    tensor.set_data_from_numpy(rows)
    body, json_size = triton.InferenceServerClient.generate_request_body(
        [tensor], outputs=outputs, **kwargs
    )
    headers = {} if json_size is None else {"Inference-Header-Content-Length": str(json_size)}
    return body, headers


def read_result(response: httpx.Response) -> triton.InferResult:
    length = response.headers.get("inference-header-content-length")
    return triton.InferResult.from_response_body(
        response.content, header_length=None if length is None else int(length)
    )


@pytest.mark.parametrize(
    ("datatype", "dtype"), [("FP32", np.float32), ("FP64", np.float64), ("INT64", np.int64)]
)
def test_binary_inputs_and_outputs_agree_with_the_model(
    iris: TestClient, session: ort.InferenceSession, datatype: str, dtype: type
) -> None:
    rows: np.ndarray = ROWS.astype(dtype)
    body, headers = triton_request(rows, datatype)
    response = iris.post(INFER, content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    result = read_result(response)
    labels, probabilities = session.run(None, {"input": rows.astype(np.float32)})
    assert np.array_equal(result.as_numpy("label"), labels)
    assert np.array_equal(result.as_numpy("probabilities"), probabilities)
    assert result.get_response()["model_version"] == "1"


def test_a_thousand_rows_in_binary(iris: TestClient, session: ort.InferenceSession) -> None:
    rows = np.resize(ROWS, (1000, 4))
    body, headers = triton_request(rows)
    response = iris.post(INFER, content=body, headers=headers)
    assert response.status_code == 200, response.text
    result = read_result(response)
    assert np.array_equal(result.as_numpy("label"), session.run(["label"], {"input": rows})[0])
    assert result.as_numpy("probabilities").shape == (1000, 3)


def test_outputs_are_json_unless_asked_for_in_binary(iris: TestClient) -> None:
    json_output = triton.InferRequestedOutput("label", binary_data=False)
    binary_output = triton.InferRequestedOutput("probabilities", binary_data=True)
    body, headers = triton_request(ROWS, outputs=[json_output, binary_output], request_id="7")
    response = iris.post(INFER, content=body, headers=headers)
    assert response.status_code == 200, response.text
    header = orjson.loads(
        response.content[: int(response.headers["inference-header-content-length"])]
    )
    assert header["id"] == "7"
    label, probabilities = header["outputs"]
    assert label["data"] == [0, 2]
    assert probabilities["parameters"] == {"binary_data_size": 2 * 3 * 4}
    assert "data" not in probabilities
    assert read_result(response).as_numpy("probabilities").shape == (2, 3)
    # Binary inputs, JSON outputs: a plain JSON answer with no length header.
    body, headers = triton_request(ROWS, outputs=[triton.InferRequestedOutput("label", False)])
    response = iris.post(INFER, content=body, headers=headers)
    assert "inference-header-content-length" not in response.headers
    assert response.json()["outputs"][0]["data"] == [0, 2]


def test_json_inputs_with_binary_outputs(iris: TestClient) -> None:
    request = {
        "inputs": [
            {"name": "input", "shape": [2, 4], "datatype": "FP32", "data": ROWS.ravel().tolist()}
        ],
        "parameters": {"binary_data_output": True},
    }
    response = iris.post(INFER, content=orjson.dumps(request))
    assert response.status_code == 200, response.text
    assert read_result(response).as_numpy("label").tolist() == [0, 2]


def raw_request(
    header: dict[str, Any], data: bytes, length: int | None = None
) -> tuple[bytes, dict[str, str]]:
    encoded = orjson.dumps(header)
    size = len(encoded) if length is None else length
    return encoded + data, {"Inference-Header-Content-Length": str(size)}


def binary_input(
    size: int, datatype: str = "FP32", shape: list[int] | None = None
) -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": "input",
                "shape": shape or [2, 4],
                "datatype": datatype,
                "parameters": {"binary_data_size": size},
            }
        ]
    }


GOOD = ROWS.tobytes()


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (raw_request(binary_input(len(GOOD) - 4), GOOD[:-4]), 400, "needs 32"),
        (raw_request(binary_input(len(GOOD)), GOOD + b"\0\0\0\0"), 400, "bytes follow"),
        (raw_request(binary_input(len(GOOD), "FP16"), GOOD), 400, "datatype"),
        (raw_request(binary_input(len(GOOD), "BYTES"), GOOD), 400, "datatype"),
        (raw_request(binary_input(len(GOOD), "INT8"), GOOD), 400, "datatype"),
        (raw_request(binary_input(len(GOOD), shape=[2, 3]), GOOD), 400, "shape"),
        (raw_request(binary_input(len(GOOD), shape=[4, 4]), GOOD), 400, "needs 64"),
        (raw_request(binary_input(-1), GOOD), 400, "whole number"),
        (raw_request(binary_input(len(GOOD)), GOOD, length=10_000), 400, "Inference-Header"),
        (raw_request(binary_input(len(GOOD)), GOOD, length=0), 400, "Inference-Header"),
        ((GOOD, {"Inference-Header-Content-Length": "x"}), 400, "Inference-Header"),
        ((GOOD, {"Inference-Header-Content-Length": "8"}), 400, "JSON"),
        (raw_request(binary_input(len(GOOD)), np.full(8, np.nan, np.float32).tobytes()), 400, "finite"),
        (raw_request(binary_input(64, "FP64"), np.full(8, 1e39).tobytes()), 400, "finite"),
        (
            raw_request(
                {"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32",
                             "data": ROWS.ravel().tolist()}]},
                GOOD,
            ),
            400,
            "no input has binary_data_size",
        ),
        (
            raw_request(
                {"inputs": [{**binary_input(len(GOOD))["inputs"][0], "data": [1] * 8}]}, GOOD
            ),
            400,
            "must not also carry",
        ),
        (
            raw_request({**binary_input(len(GOOD)), "outputs": [{"name": "label", "parameters": {"binary_data": "yes"}}]}, GOOD),
            400,
            "true or false",
        ),
        (
            raw_request({**binary_input(len(GOOD)), "outputs": [{"name": "label", "parameters": {"class_count": 2}}]}, GOOD),
            400,
            "class_count",
        ),
        (raw_request({**binary_input(len(GOOD)), "parameters": {"binary_data_output": 1}}, GOOD), 400, "true or false"),
        (raw_request(binary_input(1000 * 4 * 4, shape=[1001, 4]), b"\0" * 1001 * 16), 413, "limit"),
    ],
)  # fmt: skip
def test_every_malformed_binary_request_is_a_4xx_that_says_why(
    iris: TestClient, body: tuple[bytes, dict[str, str]], status: int, fragment: str
) -> None:
    content, headers = body
    response = iris.post(INFER, content=content, headers=headers)
    assert response.status_code == status, response.text
    assert fragment in response.json()["error"], response.json()


def test_binary_data_size_without_the_header_is_refused(iris: TestClient) -> None:
    response = iris.post(INFER, content=orjson.dumps(binary_input(len(GOOD))))
    assert response.status_code == 400
    assert "Inference-Header-Content-Length" in response.json()["error"]


@pytest.mark.parametrize("content_type", ["application/octet-stream", "application/json", None])
def test_binary_requests_take_the_content_types_clients_send(
    iris: TestClient, content_type: str | None
) -> None:
    body, headers = triton_request(ROWS)
    if content_type:
        headers["Content-Type"] = content_type
    assert iris.post(INFER, content=body, headers=headers).status_code == 200
    headers["Content-Type"] = "text/plain"
    assert iris.post(INFER, content=body, headers=headers).status_code == 415


@pytest.mark.parametrize(
    "tensor",
    [
        np.arange(6, dtype="<f4").reshape(2, 3),
        np.arange(6, dtype="<f4").reshape(3, 2).T,  # Fortran order
        np.arange(12, dtype="<i8").reshape(3, 4)[:, ::2],  # strided
        np.arange(6, dtype=">f8").reshape(2, 3),  # big-endian
    ],
)
def test_output_tensors_are_row_major_little_endian_whatever_their_layout(
    tensor: np.ndarray,
) -> None:
    from server.tensors import output_bytes

    expected = np.ascontiguousarray(tensor, dtype=tensor.dtype.newbyteorder("<")).tobytes()
    assert output_bytes(tensor) == expected
    assert np.frombuffer(output_bytes(tensor), tensor.dtype.newbyteorder("<")).tolist() == (
        tensor.ravel().tolist()
    )


def test_the_server_checks_a_repeated_binary_header_once(
    model_dirs: dict[str, Path], header_checks: list[object]
) -> None:
    """tritonclient sends the same JSON header for every request of a shape: the route keeps it,
    and still answers each request's own values."""
    with serve(Settings(model_uri=str(model_dirs["iris"]))) as client:
        answers = []
        for rows in (ROWS[:1], ROWS[1:], ROWS[:1]):
            body, headers = triton_request(rows)
            response = client.post(INFER, content=body, headers=headers)
            assert response.status_code == 200
            answers.append(read_result(response).as_numpy("label").tolist())
    assert answers == [[0], [2], [0]]
    assert len(header_checks) == 1
