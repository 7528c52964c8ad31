"""DrainingServer's signal handling, without a real signal or socket."""

import asyncio
import logging
import signal
import socket
import threading
import time
from types import SimpleNamespace

import pytest
import uvicorn

from server.__main__ import DrainingServer, log_start
from server.connections import ConnectionGuard
from server.settings import Settings


def draining_server(delay: float) -> tuple[DrainingServer, SimpleNamespace]:
    models = SimpleNamespace(draining=False)

    async def app(scope: object, receive: object, send: object) -> None:
        raise AssertionError("not called")

    server = DrainingServer(uvicorn.Config(app), models, delay)  # type: ignore[arg-type]
    return server, models


def test_sigterm_drains_first_then_stops_after_the_delay() -> None:
    server, serving = draining_server(0.2)
    server.handle_exit(signal.SIGTERM, None)
    assert serving.draining is True
    assert server.should_exit is False  # still accepting: load balancers need a moment
    # From the same moment readiness turns 503, every answer closes its connection.
    assert (b"connection", b"close") in server.server_state.default_headers

    async def ticks() -> list[bool]:
        first = await server.on_tick(1)
        time.sleep(0.25)
        return [first, await server.on_tick(2)]

    assert asyncio.run(ticks()) == [False, True]
    assert (b"connection", b"close") in server.server_state.default_headers
    assert server.force_exit is False


def test_sigint_skips_the_delay_and_a_second_signal_forces_exit() -> None:
    server, serving = draining_server(30)
    server.handle_exit(signal.SIGINT, None)
    assert serving.draining is True
    assert asyncio.run(server.on_tick(1)) is True
    server.handle_exit(signal.SIGTERM, None)
    assert server.should_exit is True
    assert server.force_exit is True


def test_start_up_says_when_no_keys_protect_the_server(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="server"):
        log_start(Settings())
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "no API keys" in warnings[0].getMessage()


def test_start_up_counts_keys_and_never_shows_them(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="server"):
        log_start(Settings(api_keys=frozenset({"secret-1", "secret-2"})))
    [record] = caplog.records
    assert record.levelno == logging.INFO
    assert record.api_keys == 2  # type: ignore[attr-defined]
    assert record.open_routes == ["metrics"]  # type: ignore[attr-defined]
    assert "secret" not in caplog.text


def test_a_connection_accepted_before_the_listener_closed_is_answered_when_its_request_is_late() -> (
    None
):
    """A client that connected just before the drain ended but is slow to send (a busy machine)
    is answered, not closed unanswered: uvicorn closes every connection without a request."""

    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b"ok"})  # type: ignore[operator]

    guard = ConnectionGuard(8192, 10.0, 100)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, http=guard.protocol_class(), lifespan="off",
        log_config=None, timeout_graceful_shutdown=5,
    )  # fmt: skip
    server = DrainingServer(config, SimpleNamespace(draining=False), 0.0)  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run)
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        client.settimeout(5)
        time.sleep(0.1)  # accepted
        server.handle_exit(signal.SIGINT, None)
        time.sleep(1.0)  # the listener has closed; the request is late
        client.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        answer = client.recv(4096)
        client.close()
    finally:
        server.should_exit = server.force_exit = True
        thread.join(timeout=10)
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert b"connection: close" in answer.lower()
