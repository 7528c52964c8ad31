"""The builtin transport's own rules (server/grpc_builtin.py), against the app in process with
raw HTTP/2 on loopback: every call is answered whatever fails in it, the cap on calls is
counted at dispatch, grpc-timeout is ASCII only. What every transport must do is tested in
test_grpc_server.py and test_grpc_limits.py, against both."""

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hpack import Decoder

from server.errors import MalformedRequest
from server.grpc_builtin import Unimplemented, grpc_timeout, message_of, percent_encoded
from server.grpc_calls import Calls
from server.settings import Settings
from tests import grpc_wire
from tests.server.conftest import serve
from tests.server.test_grpc_server import KEY, SERVICE, free_port

LIVE = f"/{SERVICE}/ServerLive"
EMPTY_MESSAGE = grpc_wire.frame(grpc_wire.DATA, grpc_wire.END_STREAM, 0, b"\0\0\0\0\0")


def settings(model_dirs: dict[str, Path], **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "model_uri": str(model_dirs["iris"]), "host": "127.0.0.1", "grpc_port": free_port(),
        "api_keys": frozenset({KEY}), "grpc_transport": "builtin", **changes,
    }  # fmt: skip
    return Settings(**values)


def call(stream: int, path: str = LIVE, *metadata: tuple[str, str], end: bool = True) -> bytes:
    """HEADERS for a call on `stream`, then (with `end`) its empty message."""
    head = grpc_wire.frame(
        grpc_wire.HEADERS, grpc_wire.END_HEADERS, stream, grpc_wire.grpc_headers(path, *metadata)
    )
    if not end:
        return head
    return head + EMPTY_MESSAGE[:5] + stream.to_bytes(4, "big") + EMPTY_MESSAGE[9:]


def answers(sock: socket.socket, calls: int) -> dict[int, dict[bytes, bytes]]:
    """The last header block (the trailers) of each stream, once `calls` streams have ended."""
    found: dict[int, dict[bytes, bytes]] = {}
    for _ in range(50):
        for kind, flags, stream, payload in grpc_wire.read_frames(sock, 0.2):
            if kind == grpc_wire.HEADERS and flags & grpc_wire.END_STREAM:
                found[stream] = dict(Decoder().decode(payload, raw=True))  # literals only
        if len(found) >= calls:
            break
    return found


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(b"10S", 10.0), (b"5m", 0.005), (b"2H", 7200.0), (b"99999999u", 99.999999),
     ("\u00b9S".encode(), None), ("\u0661S".encode(), None), (b"123456789S", None),
     (b"S", None), (b"10", None), (b"-1S", None), (b" 1S", None)],
)  # fmt: skip
def test_grpc_timeout_is_ascii_digits_and_a_unit(value: bytes, seconds: float | None) -> None:
    assert grpc_timeout(value) == seconds


def test_grpc_message_is_percent_encoded() -> None:
    assert percent_encoded("50% \u00e9\n") == b"50%25 %C3%A9%0A"


def test_a_body_is_one_uncompressed_message() -> None:
    assert message_of(bytearray(b"\0\0\0\0\2ab")) == b"ab"
    with pytest.raises(Unimplemented):
        message_of(bytearray(b"\1\0\0\0\2ab"))
    for body in (b"", b"\0\0", b"\0\0\0\0\3ab", b"\0\0\0\0\1ab"):
        with pytest.raises(MalformedRequest):
            message_of(bytearray(body))


def test_a_timeout_that_does_not_parse_still_gets_its_call_answered(
    model_dirs: dict[str, Path],
) -> None:
    config = settings(model_dirs)
    with serve(config), grpc_wire.connect(config.grpc_port) as sock:
        sock.sendall(call(1, LIVE, ("grpc-timeout", "\u00b9\u2070S")) + call(3, LIVE))
        got = answers(sock, 2)
    assert got[1][b"grpc-status"] == got[3][b"grpc-status"] == b"0"


def test_a_short_timeout_answers_deadline_exceeded(model_dirs: dict[str, Path]) -> None:
    config = settings(model_dirs, body_timeout_seconds=0)
    with serve(config), grpc_wire.connect(config.grpc_port) as sock:
        sock.sendall(call(1, LIVE, ("grpc-timeout", "100m"), end=False))  # no message comes
        got = answers(sock, 1)
    assert got[1][b"grpc-status"] == b"4"


def test_the_cap_on_calls_is_counted_at_dispatch(model_dirs: dict[str, Path]) -> None:
    """40 calls in one packet, none yet run: MAX_CONCURRENCY + 32 = 33 start, 7 are refused."""
    config = settings(model_dirs, max_concurrency=1, body_timeout_seconds=0)
    with serve(config), grpc_wire.connect(config.grpc_port) as sock:
        sock.sendall(b"".join(call(2 * i + 1, LIVE, end=False) for i in range(40)))
        got = answers(sock, 7)
    assert sorted(got) == list(range(67, 81, 2))
    assert {fields[b"grpc-status"] for fields in got.values()} == {b"8"}


def test_calls_cancelled_before_they_run_are_uncounted(model_dirs: dict[str, Path]) -> None:
    """HEADERS + RST_STREAM in one write cancels a call's task before its first step; 40 of
    them (past MAX_CONCURRENCY + 32) must not leave later calls refused as too many."""
    config = settings(model_dirs, max_concurrency=1, body_timeout_seconds=0)
    reset = b"".join(
        call(2 * i + 1, LIVE, end=False)
        + grpc_wire.frame(grpc_wire.RST_STREAM, 0, 2 * i + 1, (8).to_bytes(4, "big"))
        for i in range(40)
    )
    with serve(config) as client:
        with grpc_wire.connect(config.grpc_port) as sock:
            sock.sendall(reset)
            grpc_wire.read_frames(sock, 0.3)
        with grpc_wire.connect(config.grpc_port) as sock:
            sock.sendall(call(1))
            assert answers(sock, 1)[1][b"grpc-status"] == b"0"
        assert client.app.state.grpc.running == 0  # type: ignore[attr-defined]


def test_a_client_that_never_reads_cannot_grow_the_servers_output(
    model_dirs: dict[str, Path],
) -> None:
    """Unknown-method calls (each answered ~4x its size) from a client that never reads: once
    the server's writing pauses it stops reading, so the client's sending stalls and what the
    server holds for it stays near the transport's high-water mark."""
    config = settings(model_dirs)
    block = grpc_wire.grpc_headers("/nope.Service/Method")
    with serve(config) as client:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", config.grpc_port))
        sock.sendall(grpc_wire.PREFACE)
        sock.settimeout(1.0)
        sent, stream = 0, 1
        try:
            while sent < 64 * 2**20:  # the old code read all of it, whatever it cost
                batch = b"".join(
                    grpc_wire.frame(grpc_wire.HEADERS, 5, stream + 2 * i, block) for i in range(500)
                )
                stream += 1000
                sock.sendall(batch)
                sent += len(batch)
        except TimeoutError:
            pass  # the server stopped reading: the point
        time.sleep(0.5)
        front: Any = client.app.state.grpc  # type: ignore[attr-defined]
        held = [c.transport.get_write_buffer_size() for c in front.connections]
        sock.close()
    assert sent < 64 * 2**20
    assert held
    assert max(held) < 8 * 2**20


def test_a_call_without_a_message_is_invalid_argument(model_dirs: dict[str, Path]) -> None:
    """HEADERS with END_STREAM and no DATA: the client's mistake, not a message too large."""
    config = settings(model_dirs)
    with serve(config), grpc_wire.connect(config.grpc_port) as sock:
        sock.sendall(
            grpc_wire.frame(
                grpc_wire.HEADERS, grpc_wire.END_HEADERS | grpc_wire.END_STREAM, 1,
                grpc_wire.grpc_headers(LIVE),
            )
        )  # fmt: skip
        got = answers(sock, 1)
    assert got[1][b"grpc-status"] == b"3"
    assert b"no request message" in got[1][b"grpc-message"]


def test_a_failure_inside_a_call_is_still_answered(
    model_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(Calls, "run", broken)
    config = settings(model_dirs)
    with serve(config), grpc_wire.connect(config.grpc_port) as sock:
        sock.sendall(call(1))
        got = answers(sock, 1)
    assert got[1][b"grpc-status"] == b"13"


def test_host_all_ipv6_addresses_takes_ipv4_too(model_dirs: dict[str, Path]) -> None:
    """HOST=:: listens on both families, as grpcio does (and docs/protocols.md says)."""
    config = settings(model_dirs, host="::")
    with serve(config), grpc_wire.connect(config.grpc_port) as sock:  # 127.0.0.1
        sock.sendall(call(1))
        assert answers(sock, 1)[1][b"grpc-status"] == b"0"


def test_a_compressed_message_is_unimplemented(model_dirs: dict[str, Path]) -> None:
    config = settings(model_dirs)
    with serve(config), grpc_wire.connect(config.grpc_port) as sock:
        head = call(1, LIVE, end=False)
        sock.sendall(
            head + grpc_wire.frame(grpc_wire.DATA, grpc_wire.END_STREAM, 1, b"\1" + b"\0" * 4)
        )
        got = answers(sock, 1)
    assert got[1][b"grpc-status"] == b"12"
    assert b"compressed" in got[1][b"grpc-message"]


def test_an_unknown_method_is_unimplemented_and_a_wrong_content_type_415(
    model_dirs: dict[str, Path],
) -> None:
    config = settings(model_dirs)
    with serve(config), grpc_wire.connect(config.grpc_port) as sock:
        sock.sendall(call(1, "/nope.Service/Method"))
        assert answers(sock, 1)[1][b"grpc-status"] == b"12"
        block = grpc_wire.grpc_headers(LIVE).replace(b"application/grpc", b"text/plain;q=0.9")
        sock.sendall(grpc_wire.frame(grpc_wire.HEADERS, 5, 3, block))
        assert answers(sock, 1)[3][b":status"] == b"415"


def test_stopping_sends_goaway_and_lets_a_call_in_flight_finish(
    model_dirs: dict[str, Path],
) -> None:
    """GOAWAY at the stop; a call already open still gets its answer within the grace."""
    config = settings(model_dirs, shutdown_grace_seconds=5, body_timeout_seconds=0)
    with serve(config) as client, grpc_wire.connect(config.grpc_port) as sock:
        sock.sendall(call(1, LIVE, end=False))  # the call waits for its message
        time.sleep(0.3)
        grpc_front: Any = client.app.state.grpc  # type: ignore[attr-defined]
        portal: Any = client.portal
        stopping = threading.Thread(target=portal.call, args=(grpc_front.stop,))
        stopping.start()
        frames = grpc_wire.read_frames(sock, 5.0, lambda f: f[0] == grpc_wire.GOAWAY)
        assert any(f[0] == grpc_wire.GOAWAY for f in frames)
        sock.sendall(EMPTY_MESSAGE[:5] + (1).to_bytes(4, "big") + EMPTY_MESSAGE[9:])
        assert answers(sock, 1)[1][b"grpc-status"] == b"0"  # answered after the GOAWAY
        stopping.join(3)  # the stop ends once its last call does, not at the 5 s grace
        assert not stopping.is_alive()


def test_the_builtin_transport_never_imports_grpcio(tmp_path: Path) -> None:
    """Its memory saving is grpc core not being loaded at all (a process of its own to see it)."""
    code = (
        "import sys; from server.app import create_app; from server.settings import Settings; "
        f"create_app(Settings(model_uri={str(tmp_path)!r}, grpc_port=50051)); "
        "print(sorted(m for m in sys.modules if m == 'grpc' or m.startswith('grpc.')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
