"""The gRPC front end's limits, against the app in process with real sockets on loopback.

Connections (a share of the cap, the handshake deadline, idle ones closed, streams per
connection), the key and shed checks before the request message is read, the deadline on that
message, the bound on RPCs with MAX_CONCURRENCY, binding IPv6 literals, and the stop's grace.
"""

import socket
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import grpc
import pytest

from server import grpc_limits
from server.grpc_limits import UNSHED_RPCS, listen_address
from server.protos import grpc_predict_v2_pb2 as pb
from server.settings import GrpcTransport, Settings
from tests import grpc_wire
from tests.grpc_wire import Silent, open_call
from tests.server.conftest import serve
from tests.server.test_grpc_server import (
    AUTH,
    KEY,
    SERVICE,
    free_port,
    grpc_count,
    infer_request,
    transport,
)

INFER = f"/{SERVICE}/ModelInfer"
LIVE = f"/{SERVICE}/ServerLive"


__all__ = ["transport"]  # the fixture: every test here runs against both transports
TRANSPORT = "grpcio"


@pytest.fixture(autouse=True)
def _transport(transport: GrpcTransport, monkeypatch: pytest.MonkeyPatch) -> None:
    """`settings` names the transport the test runs against."""
    monkeypatch.setitem(globals(), "TRANSPORT", transport)


def settings(model_dirs: dict[str, Path], **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "model_uri": str(model_dirs["iris"]), "host": "127.0.0.1", "grpc_port": free_port(),
        "api_keys": frozenset({KEY}), "grpc_transport": TRANSPORT, **changes,
    }  # fmt: skip
    return Settings(**values)


# --- connections ---


def test_grpc_is_held_to_its_share_of_the_connection_cap(model_dirs: dict[str, Path]) -> None:
    config = settings(model_dirs, max_connections=20)  # 10 for HTTP, 10 for gRPC
    with serve(config), ExitStack() as stack:
        sockets = [stack.enter_context(grpc_wire.connect(config.grpc_port)) for _ in range(30)]
        shut = grpc_wire.closed(sockets, 5.0, enough=20)
        assert len(shut) == 20  # past the first ten
        assert grpc_wire.closed([s for s in sockets if s not in shut], 0.3) == []  # they stay
        for sock in sockets:
            sock.close()
        time.sleep(0.5)
        with grpc.insecure_channel(f"127.0.0.1:{config.grpc_port}") as channel:
            live = channel.unary_unary(LIVE)(b"", timeout=10)  # room again once they are gone
            assert pb.ServerLiveResponse.FromString(live).live


def test_a_connection_that_stops_in_the_handshake_is_closed_after_the_header_timeout(
    model_dirs: dict[str, Path],
) -> None:
    config = settings(model_dirs, header_timeout_seconds=0.5)
    with serve(config), grpc_wire.connect(config.grpc_port, grpc_wire.MAGIC) as silent:
        assert grpc_wire.closed([silent], 5.0) == [silent]  # the magic but never its SETTINGS


def test_an_idle_connection_is_closed(
    model_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(grpc_limits, "IDLE_SECONDS", 0.5)
    config = settings(model_dirs)
    with serve(config), grpc_wire.connect(config.grpc_port) as idle:
        assert grpc_wire.closed([idle], 5.0) == [idle]


def test_streams_per_connection_are_bounded(model_dirs: dict[str, Path]) -> None:
    config = settings(model_dirs, body_timeout_seconds=0)
    with serve(config), grpc_wire.connect(config.grpc_port) as sock:
        assert grpc_wire.server_settings(sock)[grpc_wire.MAX_CONCURRENT_STREAMS] == 100
        sock.sendall(grpc_wire.frame(grpc_wire.SETTINGS, grpc_wire.ACK, 0))
        time.sleep(0.2)
        head = grpc_wire.grpc_headers(LIVE)
        # 101 calls whose message never comes: the 101st is refused (REFUSED_STREAM).
        sock.sendall(b"".join(grpc_wire.frame(grpc_wire.HEADERS, grpc_wire.END_HEADERS, 2 * i + 1, head)
                              for i in range(101)))  # fmt: skip
        resets = [
            (stream, payload)
            for kind, _, stream, payload in grpc_wire.read_frames(
                sock, 5.0, lambda f: f[0] == grpc_wire.RST_STREAM
            )
            if kind == grpc_wire.RST_STREAM
        ]
    assert resets == [(201, (7).to_bytes(4, "big"))]


# --- checks before the message is read ---


def test_the_key_is_checked_before_the_message_arrives(model_dirs: dict[str, Path]) -> None:
    config = settings(model_dirs)
    with serve(config) as client, grpc.insecure_channel(f"127.0.0.1:{config.grpc_port}") as ch:
        silent = Silent()
        try:
            for metadata in ((), (("authorization", "Bearer wrong"),)):
                with pytest.raises(grpc.RpcError) as caught:
                    open_call(ch, INFER, silent, metadata=metadata).result(timeout=5)
                assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        finally:
            silent.release.set()
        assert grpc_count(client, INFER, 401) == 2


def test_a_rotated_key_is_used_at_once(model_dirs: dict[str, Path]) -> None:
    config = settings(model_dirs)
    with serve(config) as client, grpc.insecure_channel(f"127.0.0.1:{config.grpc_port}") as ch:
        infer = ch.unary_unary(INFER, request_serializer=pb.ModelInferRequest.SerializeToString)
        client.app.keys.replace({"rotated"})  # type: ignore[attr-defined]
        infer(infer_request(), metadata=(("authorization", "Bearer rotated"),), timeout=10)
        with pytest.raises(grpc.RpcError) as caught:
            infer(infer_request(), metadata=AUTH, timeout=10)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_shedding_happens_before_the_message_arrives(model_dirs: dict[str, Path]) -> None:
    config = settings(model_dirs, max_concurrency=1)
    with serve(config) as client, grpc.insecure_channel(f"127.0.0.1:{config.grpc_port}") as ch:
        concurrency = client.app.concurrency  # type: ignore[attr-defined]
        silent = Silent()
        first = open_call(ch, INFER, silent, metadata=AUTH)
        try:
            deadline = time.monotonic() + 5
            while concurrency.in_flight == 0:  # the first call holds the one slot, unread
                assert time.monotonic() < deadline, "the slot was not taken before the message"
                time.sleep(0.01)
            with pytest.raises(grpc.RpcError) as caught:
                open_call(ch, INFER, Silent(), metadata=AUTH).result(timeout=5)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            assert grpc_count(client, "shed", 503) == 1
        finally:
            first.cancel()
            silent.release.set()
        deadline = time.monotonic() + 5
        while concurrency.in_flight:  # a cancelled call gives its slot back
            assert time.monotonic() < deadline, "the slot of a cancelled call was kept"
            time.sleep(0.01)


def test_the_message_must_arrive_within_the_body_timeout(model_dirs: dict[str, Path]) -> None:
    config = settings(model_dirs, body_timeout_seconds=0.5)
    with serve(config) as client, grpc.insecure_channel(f"127.0.0.1:{config.grpc_port}") as ch:
        silent = Silent()
        try:
            with pytest.raises(grpc.RpcError) as caught:
                open_call(ch, INFER, silent, metadata=AUTH).result(timeout=10)
        finally:
            silent.release.set()
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "did not arrive within 0.5 seconds" in caught.value.details()
        assert grpc_count(client, INFER, 408) == 1
        assert client.app.concurrency.in_flight == 0  # type: ignore[attr-defined]


def test_max_concurrency_bounds_the_calls_grpc_runs(model_dirs: dict[str, Path]) -> None:
    config = settings(model_dirs, max_concurrency=1, body_timeout_seconds=0)
    with serve(config), grpc.insecure_channel(f"127.0.0.1:{config.grpc_port}") as ch:
        silent = Silent()
        held = [open_call(ch, LIVE, silent) for _ in range(1 + UNSHED_RPCS)]
        try:
            time.sleep(0.5)
            with pytest.raises(grpc.RpcError) as caught:
                ch.unary_unary(LIVE)(b"", timeout=10)
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        finally:
            silent.release.set()
            for call in held:
                call.cancel()


# --- binding and stopping ---


@pytest.mark.parametrize(
    ("host", "port", "address"),
    [("::", 8001, "[::]:8001"), ("::1", 8001, "[::1]:8001"), ("0.0.0.0", 8001, "0.0.0.0:8001"),
     ("localhost", 9, "localhost:9"), ("[::1]", 8001, "[::1]:8001")],
)  # fmt: skip
def test_ipv6_literals_are_bracketed(host: str, port: int, address: str) -> None:
    assert listen_address(host, port) == address


def test_grpc_listens_on_an_ipv6_host(model_dirs: dict[str, Path]) -> None:
    config = settings(model_dirs, host="::1")
    with serve(config), grpc.insecure_channel(f"[::1]:{config.grpc_port}") as channel:
        assert pb.ServerLiveResponse.FromString(channel.unary_unary(LIVE)(b"", timeout=10)).live


def test_a_port_that_cannot_be_bound_names_grpc_port(model_dirs: dict[str, Path]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = settings(model_dirs, grpc_port=taken.getsockname()[1])
        with pytest.raises(OSError, match=r"GRPC_PORT"), serve(config):
            pass


def test_calls_in_flight_get_shutdown_grace_seconds(model_dirs: dict[str, Path]) -> None:
    config = settings(model_dirs, shutdown_grace_seconds=0.5, body_timeout_seconds=0)
    silent = Silent()
    with grpc.insecure_channel(f"127.0.0.1:{config.grpc_port}") as channel:
        try:
            with serve(config):
                call = open_call(channel, INFER, silent, metadata=AUTH)
                time.sleep(0.3)
                started = time.monotonic()  # the app stops while the call waits for its message
            stopped_after = time.monotonic() - started
        finally:
            silent.release.set()
        assert call.exception(timeout=5) is not None
    assert stopped_after < 3.0  # the grace (0.5 s), not a fixed one


def test_metadata_is_bounded_by_max_header_bytes(model_dirs: dict[str, Path]) -> None:
    config = settings(model_dirs, max_header_bytes=4096)
    options = [("grpc.max_metadata_size", 1 << 20), ("grpc.absolute_max_metadata_size", 1 << 20)]
    with (
        serve(config),
        grpc.insecure_channel(f"127.0.0.1:{config.grpc_port}", options=options) as channel,
    ):
        live = channel.unary_unary(LIVE)
        for _ in range(5):  # grpc's own limits refuse only some calls between 8 and 16 KiB
            live(b"", metadata=(("x-padding", "a" * 3000),), timeout=10)
            with pytest.raises(grpc.RpcError) as caught:
                live(b"", metadata=(("x-padding", "a" * 5000),), timeout=10)
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
