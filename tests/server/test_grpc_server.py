"""The gRPC front end in process: the app with GRPC_PORT on loopback, called through our stubs.

tests/integration/test_protocol_clients.py drives a server process with Triton's own client.
"""

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import grpc
import numpy as np
import onnxruntime as ort
import pytest
from google.protobuf.message import Message
from starlette.testclient import TestClient

from server.protos import grpc_predict_v2_pb2 as pb
from server.protos import health_pb2
from server.settings import GrpcTransport, Settings
from tests.samples import SETOSA, VIRGINICA
from tests.server.conftest import serve

KEY = "grpc-key"
AUTH = (("authorization", f"Bearer {KEY}"),)
SERVICE = "inference.GRPCInferenceService"
ROWS = np.array([list(SETOSA.values()), list(VIRGINICA.values())], dtype=np.float32)
Tensor = pb.ModelInferRequest.InferInputTensor


def grpc_count(client: TestClient, route: str, status: int) -> float:
    """`http_requests_total` for gRPC calls to `route` (an RPC's path, or "shed") with `status`."""
    label = f'http_requests_total{{method="GRPC",route="{route}",status="{status}"}} '
    text = client.get("/metrics").text
    return float(text.split(label)[1].split()[0]) if label in text else 0.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Stub:
    """Unary calls by name, with the messages of server/protos."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.channel = channel

    def __call__(self, method: str, request: Message, response: Any, **kwargs: Any) -> Any:
        service = "grpc.health.v1.Health" if method in ("Check", "List") else SERVICE
        call = self.channel.unary_unary(
            f"/{service}/{method}",
            request_serializer=type(request).SerializeToString,
            response_deserializer=response.FromString,
        )
        return call(request, timeout=10, **kwargs)


@pytest.fixture(scope="module", params=["grpcio", "builtin"])
def transport(request: pytest.FixtureRequest) -> GrpcTransport:
    """Each test runs against both transports of the gRPC port (GRPC_TRANSPORT)."""
    return cast(GrpcTransport, request.param)


@pytest.fixture(scope="module")
def server(
    model_dirs: dict[str, Path], transport: GrpcTransport
) -> Iterator[tuple[TestClient, Stub]]:
    iris = str(model_dirs["iris"])
    settings = Settings(
        model_uri=iris, host="127.0.0.1", grpc_port=free_port(), max_batch=1000,
        grpc_transport=transport,
        api_keys=frozenset({KEY}), challenger_uri=iris, challenger_mode="shadow",
    )  # fmt: skip
    with serve(settings) as client, grpc.insecure_channel(f"127.0.0.1:{settings.grpc_port}") as ch:
        yield client, Stub(ch)


@pytest.fixture(scope="module")
def session(model_dirs: dict[str, Path]) -> ort.InferenceSession:
    return ort.InferenceSession(str(model_dirs["iris"] / "model.onnx"))


def infer_request(rows: np.ndarray = ROWS, raw: bool = True, **tensor: Any) -> pb.ModelInferRequest:
    fields = {"name": "input", "datatype": "FP32", "shape": list(rows.shape), **tensor}
    request = pb.ModelInferRequest(model_name="iris-classifier", id="r1")
    if raw:
        request.inputs.append(Tensor(**fields))
        request.raw_input_contents.append(rows.tobytes())
    else:
        request.inputs.append(
            Tensor(**fields, contents=pb.InferTensorContents(fp32_contents=rows.ravel().tolist()))
        )
    return request


def test_server_and_model_endpoints(server: tuple[TestClient, Stub]) -> None:
    _, call = server
    assert call("ServerLive", pb.ServerLiveRequest(), pb.ServerLiveResponse).live
    assert call("ServerReady", pb.ServerReadyRequest(), pb.ServerReadyResponse).ready
    # Metadata needs a key, as over HTTP, unless OPEN_ROUTES names it.
    with pytest.raises(grpc.RpcError) as refused:
        call("ServerMetadata", pb.ServerMetadataRequest(), pb.ServerMetadataResponse)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    metadata = call(
        "ServerMetadata", pb.ServerMetadataRequest(), pb.ServerMetadataResponse, metadata=AUTH
    )
    assert metadata.name == "mlops-model-server"
    ready = call("ModelReady", pb.ModelReadyRequest(name="iris-classifier"), pb.ModelReadyResponse,
                 metadata=AUTH)  # fmt: skip
    assert ready.ready
    model = call("ModelMetadata", pb.ModelMetadataRequest(name="iris-classifier", version="1"),
                 pb.ModelMetadataResponse, metadata=AUTH)  # fmt: skip
    assert (model.name, list(model.versions), model.platform) == (
        "iris-classifier",
        ["1"],
        "onnxruntime_onnx",
    )
    assert [(t.name, t.datatype, list(t.shape)) for t in model.inputs] == [
        ("input", "FP32", [-1, 4])
    ]
    assert [t.name for t in model.outputs] == ["label", "probabilities"]


@pytest.mark.parametrize("raw", [True, False])
def test_model_infer_raw_and_typed(
    server: tuple[TestClient, Stub], session: ort.InferenceSession, raw: bool
) -> None:
    _, call = server
    answer = call("ModelInfer", infer_request(raw=raw), pb.ModelInferResponse, metadata=AUTH)
    assert (answer.model_name, answer.model_version, answer.id) == ("iris-classifier", "1", "r1")
    labels, probabilities = session.run(None, {"input": ROWS})
    assert [o.name for o in answer.outputs] == ["label", "probabilities"]
    assert [list(o.shape) for o in answer.outputs] == [[2], [2, 3]]
    if raw:  # answered the way the inputs came
        got_labels = np.frombuffer(answer.raw_output_contents[0], np.int64)
        got_probabilities = np.frombuffer(answer.raw_output_contents[1], np.float32)
    else:
        assert not answer.raw_output_contents
        got_labels = np.array(answer.outputs[0].contents.int64_contents)
        got_probabilities = np.array(answer.outputs[1].contents.fp32_contents, np.float32)
    assert np.array_equal(got_labels, labels)
    assert np.array_equal(got_probabilities.reshape(2, 3), probabilities)


def test_a_thousand_rows_and_one_output(
    server: tuple[TestClient, Stub], session: ort.InferenceSession
) -> None:
    _, call = server
    rows = np.random.default_rng(5).uniform(0.1, 8, (1000, 4)).astype(np.float32)
    request = infer_request(rows)
    request.outputs.add(name="label")
    answer = call("ModelInfer", request, pb.ModelInferResponse, metadata=AUTH)
    assert [o.name for o in answer.outputs] == ["label"]
    assert np.array_equal(
        np.frombuffer(answer.raw_output_contents[0], np.int64),
        session.run(["label"], {"input": rows})[0],
    )


def bad(**change: Any) -> pb.ModelInferRequest:
    request = infer_request()
    for key, value in change.items():
        if key == "raw":
            del request.raw_input_contents[:]
            request.raw_input_contents.extend(value)
        elif key == "model_name":
            request.model_name = value
        elif key == "outputs":
            request.outputs.extend(value)
        elif key == "shape":
            del request.inputs[0].shape[:]
            request.inputs[0].shape.extend(value)
        else:
            setattr(request.inputs[0], key, value)
    return request


Output = pb.ModelInferRequest.InferRequestedOutputTensor


@pytest.mark.parametrize(
    ("request_", "code", "fragment"),
    [
        (bad(name="x"), grpc.StatusCode.INVALID_ARGUMENT, "unknown input"),
        (bad(datatype="BYTES"), grpc.StatusCode.INVALID_ARGUMENT, "datatype"),
        (bad(datatype="FP16"), grpc.StatusCode.INVALID_ARGUMENT, "datatype"),
        (bad(shape=[2, 3]), grpc.StatusCode.INVALID_ARGUMENT, "shape"),
        (bad(shape=[3, 4]), grpc.StatusCode.INVALID_ARGUMENT, "needs 48"),
        (bad(raw=[ROWS.tobytes()[:-1]]), grpc.StatusCode.INVALID_ARGUMENT, "needs 32"),
        (bad(raw=[ROWS.tobytes() + b"\0" * 4]), grpc.StatusCode.INVALID_ARGUMENT, "needs 32"),
        (bad(raw=[ROWS.tobytes(), ROWS.tobytes()]), grpc.StatusCode.INVALID_ARGUMENT, "one input"),
        (bad(raw=[np.full(8, np.inf, np.float32).tobytes()]), grpc.StatusCode.INVALID_ARGUMENT,
         "finite"),
        (bad(raw=[]), grpc.StatusCode.INVALID_ARGUMENT, "8 numbers"),
        (bad(outputs=[Output(name="nope")]), grpc.StatusCode.INVALID_ARGUMENT, "unknown output"),
        (bad(outputs=[Output(name="label"), Output(name="label")]),
         grpc.StatusCode.INVALID_ARGUMENT, "twice"),
        (bad(outputs=[Output(name="label", parameters={"class_count": pb.InferParameter(int64_param=2)})]),
         grpc.StatusCode.INVALID_ARGUMENT, "class_count"),
        (bad(model_name="nope"), grpc.StatusCode.NOT_FOUND, "nope"),
        (infer_request(np.zeros((1001, 4), np.float32)), grpc.StatusCode.RESOURCE_EXHAUSTED, "limit"),
    ],
)  # fmt: skip
def test_every_bad_request_has_its_status_and_says_why(
    server: tuple[TestClient, Stub], request_: pb.ModelInferRequest, code: grpc.StatusCode,
    fragment: str,
) -> None:  # fmt: skip
    _, call = server
    with pytest.raises(grpc.RpcError) as caught:
        call("ModelInfer", request_, pb.ModelInferResponse, metadata=AUTH)
    assert caught.value.code() == code
    assert fragment in caught.value.details()


def test_keys_are_required_for_inference_only(server: tuple[TestClient, Stub]) -> None:
    _, call = server
    for metadata in ((), (("authorization", "Bearer wrong"),)):
        with pytest.raises(grpc.RpcError) as caught:
            call("ModelInfer", infer_request(), pb.ModelInferResponse, metadata=metadata)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert call("ServerReady", pb.ServerReadyRequest(), pb.ServerReadyResponse).ready


def test_health_checking(server: tuple[TestClient, Stub]) -> None:
    _, call = server
    serving = health_pb2.HealthCheckResponse.SERVING
    for service in ("", SERVICE):
        check = call(
            "Check", health_pb2.HealthCheckRequest(service=service), health_pb2.HealthCheckResponse
        )
        assert check.status == serving
    listing = call("List", health_pb2.HealthListRequest(), health_pb2.HealthListResponse)
    assert {k: v.status for k, v in listing.statuses.items()} == {"": serving, SERVICE: serving}
    with pytest.raises(grpc.RpcError) as caught:
        call(
            "Check", health_pb2.HealthCheckRequest(service="other"), health_pb2.HealthCheckResponse
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_grpc_shares_metrics_drift_shadow_and_the_concurrency_limit(
    server: tuple[TestClient, Stub],
) -> None:
    client, call = server
    app: Any = client.app
    before = app.state.plane.drift._count
    call("ModelInfer", infer_request(), pb.ModelInferResponse, metadata=AUTH)
    assert app.state.plane.drift._count == min(before + 2, app.state.plane.drift.window)
    text = client.get("/metrics").text
    assert (
        'http_requests_total{method="GRPC",route="/inference.GRPCInferenceService/ModelInfer",'
        'status="200"}' in text
    )
    assert 'status="401"' in text
    assert 'model_shadow_agreement_total{outcome="agree"}' in text
    assert 'model_shadow_agreement_total{outcome="agree"} 0.0' not in text
    concurrency = app.concurrency
    concurrency.limit, concurrency.in_flight = 1, 1
    try:
        with pytest.raises(grpc.RpcError) as caught:
            call("ModelInfer", infer_request(), pb.ModelInferResponse, metadata=AUTH)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        # Probes are never shed.
        assert call("ServerReady", pb.ServerReadyRequest(), pb.ServerReadyResponse).ready
    finally:
        concurrency.limit, concurrency.in_flight = 0, 0


def test_not_ready_and_draining(
    model_dirs: dict[str, Path], tmp_path: Path, transport: GrpcTransport
) -> None:
    port = free_port()
    settings = Settings(
        model_uri=str(tmp_path / "none"),
        host="127.0.0.1",
        grpc_port=port,
        retry_seconds=60,
        grpc_transport=transport,
    )
    with serve(settings), grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = Stub(channel)
        assert not call("ServerReady", pb.ServerReadyRequest(), pb.ServerReadyResponse).ready
        check = call("Check", health_pb2.HealthCheckRequest(), health_pb2.HealthCheckResponse)
        assert check.status == health_pb2.HealthCheckResponse.NOT_SERVING
        with pytest.raises(grpc.RpcError) as caught:
            call("ModelInfer", infer_request(), pb.ModelInferResponse)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_grpc_is_off_unless_its_port_is_set(iris_app: TestClient) -> None:
    assert iris_app.app.state.grpc is None  # type: ignore[attr-defined]


def test_a_port_that_cannot_be_bound_fails_the_start(
    model_dirs: dict[str, Path], transport: GrpcTransport
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = Settings(
            model_uri=str(model_dirs["iris"]),
            host="127.0.0.1",
            grpc_port=port,
            grpc_transport=transport,
        )
        with pytest.raises(Exception, match=r"gRPC|bind|port"), serve(settings):
            pass


def test_the_request_id_is_taken_from_metadata_or_made_up_and_answered_in_trailers(
    server: tuple[TestClient, Stub],
) -> None:
    _, call = server
    method = call.channel.unary_unary(
        f"/{SERVICE}/ModelInfer",
        request_serializer=pb.ModelInferRequest.SerializeToString,
        response_deserializer=pb.ModelInferResponse.FromString,
    )
    _, given = method.with_call(
        infer_request(), metadata=(*AUTH, ("x-request-id", "client-7")), timeout=10
    )
    assert dict(given.trailing_metadata())["x-request-id"] == "client-7"
    _, made_up = method.with_call(
        infer_request(), metadata=(*AUTH, ("x-request-id", "no spaces allowed")), timeout=10
    )
    made = dict(made_up.trailing_metadata())["x-request-id"]
    assert len(made) == 32
    assert made != "no spaces allowed"


@pytest.mark.parametrize(
    "raw",
    [
        b"\x0a\x02\xff\xfe",  # model_name: invalid UTF-8
        b"\x2a\x04\x0a\x02\xc3\x28",  # inputs[0].name: invalid UTF-8
        b"\x0a\xff\xff\xff",  # not a message: a length past the end
    ],
)
def test_a_message_that_does_not_decode_is_invalid_argument_and_counted(
    server: tuple[TestClient, Stub], raw: bytes
) -> None:
    client, call = server
    route = f"/{SERVICE}/ModelInfer"
    before = grpc_count(client, route, 400)
    method = call.channel.unary_unary(route, request_serializer=None, response_deserializer=None)
    with pytest.raises(grpc.RpcError) as caught:
        method(raw, metadata=AUTH, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "ModelInferRequest" in caught.value.details()
    assert grpc_count(client, route, 400) == before + 1


def test_a_message_past_max_body_bytes_is_resource_exhausted_and_counted(
    server: tuple[TestClient, Stub],
) -> None:
    client, call = server
    before = grpc_count(client, f"/{SERVICE}/ModelInfer", 413)
    with pytest.raises(grpc.RpcError) as caught:  # 1.1 MB: past the default 1 MiB
        call("ModelInfer", infer_request(np.ones((70_000, 4), np.float32)),
             pb.ModelInferResponse, metadata=AUTH)  # fmt: skip
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert grpc_count(client, f"/{SERVICE}/ModelInfer", 413) == before + 1
