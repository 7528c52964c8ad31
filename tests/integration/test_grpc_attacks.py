"""The builtin gRPC transport under attack, in a real server process: many connections that
shut their windows, send bodies in tiny DATA frames, or flood SETTINGS and PING. The server's
memory stays bounded, /health keeps answering, and the port serves again afterwards."""

import contextlib
import struct
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import grpc
import httpx
import pytest

from tests import grpc_wire
from tests.integration.checks import server_errors
from tests.model_dirs import build_model_dir
from tests.processes import ServerProcess, free_port, model_server

pytestmark = pytest.mark.integration

LIVE = "/inference.GRPCInferenceService/ServerLive"
INFER = "/inference.GRPCInferenceService/ModelInfer"
INITIAL_WINDOW_SIZE, PING, WINDOW_UPDATE = 0x4, 0x6, 0x8
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model_dir("iris", tmp_path_factory.mktemp("iris"))


def rss(server: ServerProcess) -> int:
    """The server's resident memory in bytes."""
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) * 1024


def health_answers(server: ServerProcess) -> bool:
    return httpx.get(server.url + "/health", timeout=5).status_code == 200


def settings(*entries: tuple[int, int]) -> bytes:
    payload = b"".join(struct.pack(">HI", k, v) for k, v in entries)
    return grpc_wire.frame(grpc_wire.SETTINGS, 0, 0, payload)


def test_attacks_leave_memory_bounded_and_health_answering(iris: Path, tmp_path: Path) -> None:
    grpc_port = free_port()
    env = {"MODEL_URI": str(iris), "GRPC_PORT": str(grpc_port), "GRPC_TRANSPORT": "builtin",
           "HEADER_TIMEOUT_SECONDS": "60", "BODY_TIMEOUT_SECONDS": "60"}  # fmt: skip
    with model_server(env, tmp_path) as server, ExitStack() as stack:
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            channel.unary_unary(LIVE)(b"", timeout=10)  # warm: the transport's imports are in
        before = rss(server)

        # 1. Zero windows: 300 connections whose calls can never be answered.
        shut = settings((INITIAL_WINDOW_SIZE, 0))
        for _ in range(300):
            sock = stack.enter_context(grpc_wire.connect(grpc_port, grpc_wire.MAGIC + shut))
            calls = b"".join(
                grpc_wire.frame(grpc_wire.HEADERS, grpc_wire.END_HEADERS, 2 * i + 1,
                                grpc_wire.grpc_headers(LIVE))
                + grpc_wire.frame(grpc_wire.DATA, grpc_wire.END_STREAM, 2 * i + 1, b"\0" * 5)
                for i in range(20)
            )  # fmt: skip
            sock.sendall(calls)
        assert health_answers(server)

        # 2. Bodies in 2-byte DATA frames: 20 connections, 4 streams of 32 KiB each.
        tiny: list[bytes] = []
        for i in range(4):
            stream = 2 * i + 1
            prefix = b"\0" + (32 * 1024).to_bytes(4, "big")
            head = grpc_wire.frame(grpc_wire.HEADERS, grpc_wire.END_HEADERS, stream,
                                   grpc_wire.grpc_headers(INFER))  # fmt: skip
            body = prefix + b"\1" * (32 * 1024)
            tiny.append(head + b"".join(
                grpc_wire.frame(grpc_wire.DATA, 0, stream, body[j : j + 2])
                for j in range(0, len(body), 2)
            ))  # fmt: skip
        senders = []
        for _ in range(20):
            sock = stack.enter_context(grpc_wire.connect(grpc_port))
            thread = threading.Thread(target=sock.sendall, args=(b"".join(tiny),), daemon=True)
            thread.start()
            senders.append(thread)
        for thread in senders:
            thread.join(120)
        assert health_answers(server)

        # 3. Floods: SETTINGS of 2,730 entries, PINGs, WINDOW_UPDATEs on the connection.
        floods = [
            settings(*[(INITIAL_WINDOW_SIZE, 65535)] * 2730),  # 16,380 bytes: one frame
            grpc_wire.frame(PING, 0, 0, b"12345678") * 5000,
            grpc_wire.frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1)) * 5000,
        ]
        flooders = []
        for i in range(60):
            sock = stack.enter_context(grpc_wire.connect(grpc_port))
            with contextlib.suppress(OSError):  # closed for it already
                sock.sendall(floods[i % 3])
            flooders.append(sock)
        started = time.monotonic()
        assert health_answers(server)
        assert time.monotonic() - started < 2.0
        ended = grpc_wire.closed(flooders, 10.0, enough=len(flooders))
        assert [i % 3 for i, s in enumerate(flooders) if s not in ended] == []  # which flood

        grown = rss(server) - before
        assert grown < 80 * MiB, f"RSS grew {grown / MiB:.0f} MiB"
        stack.close()  # every attacker goes; the port serves again
        time.sleep(1.0)
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            assert channel.unary_unary(LIVE)(b"", timeout=10) is not None
        log = server.log()
    assert server_errors(log) == []
