"""DrainingServer's signal handling, without a real signal or socket."""

import asyncio
import signal
import time
from types import SimpleNamespace

import uvicorn

from server.__main__ import DrainingServer


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
