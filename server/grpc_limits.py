"""The gRPC port's limits, from the settings that bound HTTP, for either transport.

HTTP's connection limits live in our own protocol class (server/connections.py). The builtin
transport (server/grpc_builtin.py, server/http2.py) applies the values below itself; with
GRPC_TRANSPORT=grpcio the connections belong to grpc core, so the same bounds are given to it as
channel arguments (`server_options`, each checked against the grpcio this project pins by a
test that fails without it):
- connections: half the connection cap (HTTP has the other half), so idle gRPC connections cannot
  take the descriptors HTTP and its probes need; past it core closes a new connection at once
  (it cannot evict an older one, as HTTP does);
- the handshake (the client's preface and SETTINGS frame) within HEADER_TIMEOUT_SECONDS;
- a call's metadata (its headers) at most MAX_HEADER_BYTES, as grpc counts it (each entry's name
  and value and 32 bytes): past it the call is RESOURCE_EXHAUSTED (grpc's own defaults refuse
  some calls between 8 and 16 KiB and every one past that);
- a connection with no call for IDLE_SECONDS is closed (GOAWAY; clients reconnect when they next
  call), as HTTP closes idle kept-alive connections;
- STREAMS_PER_CONNECTION calls at once on one connection;
- with MAX_CONCURRENCY set, at most MAX_CONCURRENCY + UNSHED_RPCS calls at once in all (past it
  grpc answers RESOURCE_EXHAUSTED before any of our code runs): the shed check admits
  MAX_CONCURRENCY calls that do work, the rest are probes and calls being refused, each done in
  microseconds;
- a request message of at most MAX_BODY_BYTES.
"""

from typing import Any

from server.connections import connection_cap, descriptor_limit
from server.settings import Settings

IDLE_SECONDS = 30.0
# HTTP/2's recommended minimum for SETTINGS_MAX_CONCURRENT_STREAMS (RFC 9113, section 6.5.2).
STREAMS_PER_CONNECTION = 100
UNSHED_RPCS = 32
BUFFERED_BODIES = 64  # request bodies of the largest size the builtin transport holds at once
LISTENERS = 2  # with gRPC on: HTTP and gRPC share the connection cap


def listen_address(host: str, port: int) -> str:
    """`host:port` as grpc core parses it: an IPv6 literal in brackets."""
    if not host:
        return f"[::]:{port}"
    if ":" in host and not host.startswith("["):
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def max_connections(settings: Settings) -> int:
    """gRPC's share of the connection cap."""
    return connection_cap(settings.max_connections, descriptor_limit(), LISTENERS)


def max_rpcs(settings: Settings) -> int | None:
    """Calls grpc runs at once (`maximum_concurrent_rpcs`): None without MAX_CONCURRENCY."""
    return settings.max_concurrency + UNSHED_RPCS if settings.max_concurrency else None


def body_buffer_cap(settings: Settings) -> int:
    """Request-body bytes the builtin transport buffers across all its connections: 64 x
    (MAX_BODY_BYTES + 1 KiB). Past it a stream's further DATA resets it (ENHANCE_YOUR_CALM,
    which grpc clients report as RESOURCE_EXHAUSTED); grpc core bounds its own buffers."""
    return BUFFERED_BODIES * (settings.max_body_bytes + 1024)


def server_options(settings: Settings) -> list[tuple[str, Any]]:
    """The channel arguments of the gRPC server."""
    return [
        ("grpc.max_receive_message_length", settings.max_body_bytes),
        ("grpc.so_reuseport", 0),  # a second server on the port is an error, not a share
        ("grpc.max_allowed_incoming_connections", max_connections(settings)),
        ("grpc.server_handshake_timeout_ms", round(settings.header_timeout_seconds * 1000)),
        ("grpc.max_metadata_size", settings.max_header_bytes),
        ("grpc.absolute_max_metadata_size", settings.max_header_bytes),
        ("grpc.max_connection_idle_ms", round(IDLE_SECONDS * 1000)),
        ("grpc.max_concurrent_streams", STREAMS_PER_CONNECTION),
    ]
