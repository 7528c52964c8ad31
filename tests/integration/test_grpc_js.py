"""The gRPC port through a second, independent client: @grpc/grpc-js (pure JavaScript).

grpcio and tritonclient share grpc core's C HTTP/2 stack; grpc-js has its own (Node's http2),
so it checks the builtin transport against another reading of the protocol. The client is
installed by `npm ci` from tests/interop's committed package.json and package-lock.json, here,
when its node_modules is missing or older than the lock: nothing is skipped.
"""

import base64
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from server.protos import grpc_predict_v2_pb2 as pb
from server.protos import health_pb2
from tests.model_dirs import build_model_dir
from tests.processes import REPO_ROOT, ServerProcess, free_port, model_server

pytestmark = pytest.mark.integration

INTEROP = REPO_ROOT / "tests" / "interop"
KEY = "js-key"
SERVICE = "/inference.GRPCInferenceService"
OK, INVALID_ARGUMENT, UNAUTHENTICATED = 0, 3, 16


@pytest.fixture(scope="module")
def node() -> str:
    """node, with @grpc/grpc-js installed from the lock file (npm ci) when it is not yet."""
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node, "node is needed (make system-deps installs it)"
    assert npm, "npm is needed (make system-deps installs it)"
    lock = INTEROP / "package-lock.json"
    installed = INTEROP / "node_modules" / ".package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
            cwd=INTEROP, check=True, capture_output=True, timeout=300,
        )  # fmt: skip
    return node


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model_dir("iris", tmp_path_factory.mktemp("iris"))


@pytest.fixture(scope="module", params=["grpcio", "builtin"])
def server(
    request: pytest.FixtureRequest, iris: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, int]]:
    grpc_port = free_port()
    env = {"MODEL_URI": str(iris), "GRPC_PORT": str(grpc_port), "API_KEYS": KEY,
           "MAX_BATCH": "1000", "GRPC_TRANSPORT": request.param}  # fmt: skip
    with model_server(env, tmp_path_factory.mktemp("js")) as process:
        yield process, grpc_port


def js_calls(node: str, port: int, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run the calls through grpc-js; each answer's code, details, response bytes, trailers."""
    for each in calls:
        each["request"] = base64.b64encode(each["request"]).decode()
    done = subprocess.run(
        [node, str(INTEROP / "calls.js")],
        input=json.dumps({"address": f"127.0.0.1:{port}", "calls": calls}).encode(),
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    answers = [json.loads(line) for line in done.stdout.decode().splitlines()]
    for answer in answers:
        answer["response"] = base64.b64decode(answer["response"])
    return answers


def infer(rows: np.ndarray, **metadata: str) -> dict[str, Any]:
    request = pb.ModelInferRequest(model_name="iris-classifier")
    request.inputs.add(name="input", datatype="FP32", shape=list(rows.shape))
    request.raw_input_contents.append(rows.astype(np.float32).tobytes())
    return {"path": f"{SERVICE}/ModelInfer", "request": request.SerializeToString(),
            "metadata": metadata}  # fmt: skip


def test_grpc_js_infers_checks_health_and_is_refused_as_grpcio_is(
    node: str, server: tuple[ServerProcess, int], iris: Path
) -> None:
    _, port = server
    rng = np.random.default_rng(3)
    one, thousand = rng.uniform(0.1, 8, (1, 4)), rng.uniform(0.1, 8, (1000, 4))
    auth = {"authorization": f"Bearer {KEY}"}
    bad = infer(one, **auth)
    bad_request = pb.ModelInferRequest.FromString(bad["request"])
    bad_request.inputs[0].datatype = "INT8"
    bad["request"] = bad_request.SerializeToString()
    calls = [
        infer(one, **auth),
        infer(thousand, **auth, **{"x-request-id": "js-1"}),
        {"path": "/grpc.health.v1.Health/Check", "metadata": {},
         "request": health_pb2.HealthCheckRequest().SerializeToString()},
        bad,
        infer(one),  # no key
        infer(one, authorization="Bearer wrong"),
    ]  # fmt: skip
    answers = js_calls(node, port, calls)
    assert [a["code"] for a in answers] == [OK, OK, OK, INVALID_ARGUMENT, UNAUTHENTICATED,
                                            UNAUTHENTICATED]  # fmt: skip
    session = ort.InferenceSession(str(iris / "model.onnx"))
    for rows, answer in ((one, answers[0]), (thousand, answers[1])):
        response = pb.ModelInferResponse.FromString(answer["response"])
        labels = np.frombuffer(response.raw_output_contents[0], np.int64)
        assert np.array_equal(labels, session.run(None, {"input": rows.astype(np.float32)})[0])
    assert answers[1]["trailers"]["x-request-id"] == "js-1"
    health = health_pb2.HealthCheckResponse.FromString(answers[2]["response"])
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert "datatype" in answers[3]["details"]
