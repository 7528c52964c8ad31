"""The connection guard, driving uvicorn's httptools protocol with an in-memory transport."""

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, cast

import pytest
import uvicorn
from uvicorn.server import ServerState

from server.connections import ConnectionGuard, GuardedHttpToolsProtocol, connection_cap
from server.metrics import Metrics

LIMIT = 1024
TIMEOUT = 0.2
GET = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"


class Transport:
    """Just enough of asyncio.Transport for uvicorn's protocol."""

    def __init__(self) -> None:
        self.written = b""
        self.closed = False
        self.protocol: GuardedHttpToolsProtocol | None = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 40000)}.get(name)

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        if not self.closed and self.protocol is not None:  # as asyncio does: lost, a turn later
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)
        self.closed = True

    abort = close

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_protocol(self, protocol: object) -> None:
        pass

    @property
    def status(self) -> int | None:
        return int(self.written.split(b" ", 2)[1]) if self.written else None


class Server:
    """One guard, one uvicorn config and state; `connect` opens a connection to the app."""

    def __init__(self, max_connections: int = 100, metrics: Metrics | None = None) -> None:
        self.calls = 0
        self.gate: asyncio.Event | None = None  # when set, requests wait for it

        async def app(scope: Any, receive: Any, send: Any) -> None:
            self.calls += 1
            if self.gate is not None:
                await self.gate.wait()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", b"2")]})  # fmt: skip
            await send({"type": "http.response.body", "body": b"ok"})

        self.guard = ConnectionGuard(LIMIT, TIMEOUT, max_connections, metrics)
        self.config = uvicorn.Config(app, http=self.guard.protocol_class(), log_config=None)
        self.config.load()
        self.state = ServerState()

    def connect(self) -> tuple[GuardedHttpToolsProtocol, Transport]:
        protocol = cast(
            GuardedHttpToolsProtocol,
            self.config.http_protocol_class(  # type: ignore[call-arg]
                config=self.config, server_state=self.state, app_state={}
            ),
        )
        transport = Transport()
        transport.protocol = protocol
        protocol.connection_made(transport)  # type: ignore[arg-type]
        return protocol, transport


def run(scenario: Callable[[Server], Coroutine[Any, Any, None]], **options: Any) -> Server:
    server = Server(**options)
    asyncio.run(scenario(server))
    return server


def closed(transport: Transport) -> bool:
    return transport.closed


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_head_past_the_limit_across_reads_is_refused_unbuffered() -> None:
    async def scenario(server: Server) -> None:
        protocol, transport = server.connect()
        protocol.data_received(b"GET / HTTP/1.1\r\nX-Padding: ")
        for _ in range(50):  # 64 bytes a read, never finished
            if transport.closed:
                break
            protocol.data_received(b"a" * 64)
        assert transport.status == 431
        assert transport.closed
        assert b"1024 bytes" in transport.written
        assert server.calls == 0

    run(scenario)


@pytest.mark.parametrize(("size", "status"), [(LIMIT, 200), (LIMIT + 1, 431)])
def test_the_limit_counts_the_whole_head(size: int, status: int) -> None:
    async def scenario(server: Server) -> None:
        padding = size - len(GET) - len("X-P: \r\n")
        head = GET[:-2] + b"X-P: " + b"a" * padding + b"\r\n\r\n"
        assert len(head) == size
        protocol, transport = server.connect()
        for start in range(0, size, 100):  # in reads of 100 bytes
            protocol.data_received(head[start : start + 100])
        await settle()
        assert transport.status == status

    run(scenario)


def test_a_large_body_in_the_same_read_as_a_small_head_is_fine() -> None:
    async def scenario(server: Server) -> None:
        body = b"x" * 200_000
        request = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
        protocol, transport = server.connect()
        protocol.data_received(request + body)
        await settle()
        assert transport.status == 200
        protocol.data_received(GET)  # keep-alive: the next head starts from zero
        await settle()
        assert transport.written.count(b"HTTP/1.1 200") == 2

    run(scenario)


def test_a_connection_that_sends_nothing_is_closed_after_the_deadline() -> None:
    async def scenario(server: Server) -> None:
        _, silent_transport = server.connect()
        partial, partial_transport = server.connect()
        partial.data_received(b"GET /health HTTP/1.1\r\nHost")
        await asyncio.sleep(TIMEOUT / 2)
        assert not closed(silent_transport)
        await asyncio.sleep(TIMEOUT)
        assert closed(silent_transport)
        assert silent_transport.written == b""  # nothing came: nothing to answer
        assert partial_transport.closed
        assert partial_transport.status == 408
        assert not server.guard.waiting

    run(scenario)


def test_each_request_head_gets_the_deadline_anew() -> None:
    async def scenario(server: Server) -> None:
        protocol, transport = server.connect()
        for _ in range(4):  # a request every half deadline keeps the connection
            await asyncio.sleep(TIMEOUT / 2)
            protocol.data_received(GET)
            await settle()
        assert transport.written.count(b"HTTP/1.1 200") == 4
        assert not closed(transport)
        protocol.data_received(b"GET /health HTTP/1.1\r\n")  # then a head that never ends
        await asyncio.sleep(TIMEOUT * 1.5)
        assert closed(transport)
        assert transport.written.endswith(
            b'"the request headers did not arrive within 0.2 seconds"}'
        )

    run(scenario)


def test_a_slow_request_in_progress_is_not_timed_out() -> None:
    async def scenario(server: Server) -> None:
        server.gate = asyncio.Event()
        protocol, transport = server.connect()
        protocol.data_received(GET)
        await asyncio.sleep(TIMEOUT * 2)
        assert not transport.closed
        server.gate.set()
        await settle()
        assert transport.status == 200

    run(scenario)


def test_past_the_cap_the_longest_waiting_connection_makes_room(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()

    async def scenario(server: Server) -> None:
        idle = [server.connect() for _ in range(3)]
        assert not any(t.closed for _, t in idle)
        newest, transport = server.connect()
        assert idle[0][1].closed  # the oldest idle one went
        assert not idle[1][1].closed
        newest.data_received(GET)  # the newcomer (a probe, say) is served
        await settle()
        assert transport.status == 200
        for _ in range(20):
            server.connect()
            await settle()
        assert server.guard.open == 3

    with caplog.at_level(logging.WARNING, logger="server.connections"):
        run(scenario, max_connections=3, metrics=metrics)
    lines = [r for r in caplog.records if "connection limit" in r.getMessage()]
    assert len(lines) == 1  # rate-limited: one line for 21 evictions
    text = metrics.exposition()[0].decode()
    assert 'http_connections_dropped_total{reason="evicted"} 21.0' in text
    assert "http_connections_open 3.0" in text


def test_at_the_cap_with_every_connection_busy_the_newcomer_is_refused() -> None:
    async def scenario(server: Server) -> None:
        server.gate = asyncio.Event()
        busy = [server.connect() for _ in range(2)]
        for protocol, _ in busy:  # each with a request in progress
            protocol.data_received(GET)
        await settle()
        _, transport = server.connect()
        assert transport.closed
        assert not any(t.closed for _, t in busy)
        server.gate.set()
        await settle()
        assert all(t.status == 200 for _, t in busy)

    run(scenario, max_connections=2)


@pytest.mark.parametrize(
    ("configured", "descriptors", "cap"),
    [
        (10_000, 1024, 960),
        (10_000, 20_000, 10_000),
        (100, 1_048_576, 100),
        (50_000, 20_000, 19_000),
    ],
)
def test_the_cap_leaves_descriptors_for_everything_else(
    configured: int, descriptors: int, cap: int
) -> None:
    assert connection_cap(configured, descriptors) == cap


@pytest.mark.parametrize(
    ("configured", "descriptors", "share"),
    [(10_000, 1_048_576, 5000), (10_000, 1024, 480), (10_000, 400, 168), (17, 1_048_576, 8)],
)
def test_with_grpc_on_each_listener_gets_half_the_cap(
    configured: int, descriptors: int, share: int
) -> None:
    assert connection_cap(configured, descriptors, listeners=2) == share


def test_at_the_cap_an_idle_kept_alive_connection_makes_room() -> None:
    async def scenario(server: Server) -> None:
        served = [server.connect() for _ in range(2)]
        for protocol, _ in served:  # each answered once, then kept alive, sending nothing
            protocol.data_received(GET)
        await settle()
        assert not server.guard.waiting  # idle kept-alive connections are uvicorn's to time out
        newcomer, transport = server.connect()
        assert sum(t.closed for _, t in served) == 1
        newcomer.data_received(GET)
        await settle()
        assert transport.status == 200

    run(scenario, max_connections=2)


def test_the_end_of_a_large_body_is_not_counted_as_the_next_head() -> None:
    """A body's last read used to count towards the next request's head: a 431 for nothing."""

    async def scenario(server: Server) -> None:
        body = b"x" * (8 * LIMIT)
        head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
        protocol, transport = server.connect()
        for _ in range(3):
            protocol.data_received(head)
            protocol.data_received(body[: LIMIT // 2])
            protocol.data_received(body[LIMIT // 2 :])  # the last read: larger than the limit
            await settle()
        assert transport.written.count(b"HTTP/1.1 200") == 3

    run(scenario)
