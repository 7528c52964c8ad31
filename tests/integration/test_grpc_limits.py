"""The gRPC port against a real server process: descriptors at their limit, and the shutdown."""

import signal
import time
from contextlib import ExitStack
from pathlib import Path

import grpc
import httpx
import orjson
import pytest

from tests import grpc_wire
from tests.grpc_wire import Silent, open_call
from tests.integration.checks import server_errors
from tests.integration.rawhttp import open_request, read_response
from tests.model_dirs import build_model_dir
from tests.processes import free_port, model_server
from tests.samples import SETOSA

pytestmark = pytest.mark.integration

INFER = "/inference.GRPCInferenceService/ModelInfer"
BODY = orjson.dumps({"features": SETOSA})


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model_dir("iris", tmp_path_factory.mktemp("iris"))


TRANSPORTS = pytest.mark.parametrize("transport", ["grpcio", "builtin"])


@TRANSPORTS
def test_idle_grpc_connections_leave_descriptors_for_http(
    iris: Path, tmp_path: Path, transport: str
) -> None:
    """400 descriptors, 600 gRPC connections that send the preface and nothing more."""
    grpc_port = free_port()
    env = {
        "MODEL_URI": str(iris),
        "GRPC_PORT": str(grpc_port),
        "GRPC_TRANSPORT": transport,
        "HEADER_TIMEOUT_SECONDS": "60",  # the connections stay for the whole test
    }
    with model_server(env, tmp_path, max_open_files=400) as limited, ExitStack() as stack:
        for _ in range(600):
            stack.enter_context(grpc_wire.connect(grpc_port))
        time.sleep(1.0)
        for _ in range(5):
            assert httpx.get(limited.url + "/health", timeout=5).status_code == 200
            assert httpx.get(limited.url + "/ready", timeout=5).status_code == 200
        stack.close()
        time.sleep(0.5)
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:  # served again
            assert channel.unary_unary(INFER.replace("ModelInfer", "ServerLive"))(b"", timeout=10)
        log = limited.log()
    assert "Too many open files" not in log
    assert server_errors(log) == []


@TRANSPORTS
def test_sigterm_stops_http_and_grpc_together_within_the_grace(
    iris: Path, tmp_path: Path, transport: str
) -> None:
    """A call in flight on each port: gRPC's grace runs alongside HTTP's, not after it."""
    grace = 4.0
    grpc_port = free_port()
    env = {
        "MODEL_URI": str(iris),
        "GRPC_PORT": str(grpc_port),
        "GRPC_TRANSPORT": transport,
        "SHUTDOWN_GRACE_SECONDS": str(grace),
        "BODY_TIMEOUT_SECONDS": "0",  # neither call ends by itself
    }
    silent = Silent()
    with (
        model_server(env, tmp_path) as server,
        grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel,
        open_request(server.url, "/predict", len(BODY)) as http,
    ):
        try:
            http.sendall(BODY[:10])
            call = open_call(channel, INFER, silent)
            time.sleep(0.5)
            started = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            time.sleep(grace - 1)  # the HTTP request ends inside the grace; the gRPC call never
            http.sendall(BODY[10:])
            status = read_response(http)[0]
            server.process.wait(30)
            stopped_after = time.monotonic() - started
        finally:
            silent.release.set()
        assert call.exception(timeout=5) is not None
        log = server.log()
    assert status == 200
    assert server.process.returncode == 0
    # In turn, gRPC's grace would start when HTTP's request ended: grace - 1 + grace.
    assert grace <= stopped_after < grace + 2
    assert server_errors(log) == []
