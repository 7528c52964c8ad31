"""gRPC clients that misbehave: HTTP/2 as raw bytes on a socket, and calls whose message never comes.

Just enough of RFC 9113 to open connections that stop anywhere in the handshake, read the
server's SETTINGS and open streams by hand; and, with grpcio's own client, calls that send their
headers but hold their request message back.
"""

import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc

# The client connection preface: the magic, then (in a real client) a SETTINGS frame.
MAGIC = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, GOAWAY = 0x0, 0x1, 0x3, 0x4, 0x7
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1
MAX_CONCURRENT_STREAMS = 0x3


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    """One frame: 24-bit length, type, flags, 31-bit stream id, payload."""
    return (
        struct.pack(">I", len(payload))[1:]
        + bytes([kind, flags])
        + struct.pack(">I", stream)
        + payload
    )


PREFACE = MAGIC + frame(SETTINGS, 0, 0)  # what a real client sends first: magic, empty SETTINGS


def grpc_headers(path: str, *metadata: tuple[str, str]) -> bytes:
    """An HPACK block for a gRPC request to `path`: literals only, no Huffman, no dynamic table."""

    def literal(name: bytes, value: bytes) -> bytes:  # literal without indexing, indexed name
        return name + bytes([len(value)]) + value

    fields = [
        b"\x83",  # :method POST
        b"\x86",  # :scheme http
        literal(b"\x04", path.encode()),  # :path
        literal(b"\x01", b"localhost"),  # :authority
        literal(b"\x0f\x10", b"application/grpc"),  # content-type, static index 31
        literal(b"\x00\x02te", b"trailers"),
    ]
    for name, value in metadata:  # literal without indexing, new name
        fields.append(literal(b"\x00" + bytes([len(name)]) + name.encode(), value.encode()))
    return b"".join(fields)


def connect(port: int, first: bytes = PREFACE) -> socket.socket:
    """A connection to the gRPC port on loopback that has sent `first` and nothing more."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(first)
    return sock


Frame = tuple[int, int, int, bytes]  # type, flags, stream, payload


def read_frames(
    sock: socket.socket, seconds: float = 5.0, until: Callable[[Frame], bool] | None = None
) -> list[Frame]:
    """Frames the server sends within `seconds`, until it closes or sends one `until` wants."""
    frames: list[Frame] = []
    buffer = b""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0 and not (
        until is not None and any(until(f) for f in frames)
    ):
        readable, _, _ = select.select([sock], [], [], left)
        if not readable:
            break
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        buffer += chunk
        while len(buffer) >= 9 and len(buffer) >= 9 + int.from_bytes(buffer[:3], "big"):
            length = int.from_bytes(buffer[:3], "big")
            kind, flags = buffer[3], buffer[4]
            stream = int.from_bytes(buffer[5:9], "big") & 0x7FFFFFFF
            frames.append((kind, flags, stream, buffer[9 : 9 + length]))
            buffer = buffer[9 + length :]
    return frames


def server_settings(sock: socket.socket) -> dict[int, int]:
    """The parameters of the first SETTINGS frame the server sends."""
    for kind, flags, _, payload in read_frames(sock, 5.0, lambda f: f[0] == SETTINGS):
        if kind == SETTINGS and not flags & ACK:
            return {
                int.from_bytes(payload[i : i + 2], "big"): int.from_bytes(
                    payload[i + 2 : i + 6], "big"
                )
                for i in range(0, len(payload), 6)
            }
    raise AssertionError("the server sent no SETTINGS")


def closed(
    sockets: list[socket.socket], seconds: float, enough: int | None = None
) -> list[socket.socket]:
    """Those of `sockets` the server closes within `seconds` (or once `enough` are closed)."""
    open_ = list(sockets)
    shut: list[socket.socket] = []
    deadline = time.monotonic() + seconds
    while open_ and len(shut) != enough and (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select(open_, [], [], min(left, 0.2))
        for sock in readable:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                open_.remove(sock)
                shut.append(sock)
    return shut


class Silent:
    """A request stream that sends no message until released: the call's headers go, no body."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def __iter__(self) -> Iterator[bytes]:  # a generator: grpc's sending thread waits, not ours
        self.release.wait(30)
        yield from ()


def open_call(channel: grpc.Channel, path: str, silent: Silent, **kwargs: Any) -> Any:
    """A call to `path` whose message never comes (until `silent` is released): its future."""
    method = channel.stream_unary(path, request_serializer=None, response_deserializer=None)
    return method.future(iter(silent), timeout=30, **kwargs)
