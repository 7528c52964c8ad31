"""`python -m server`: run the app with uvicorn, configured from the environment.

This module owns signals and shutdown. On SIGTERM the server drains: readiness answers 503 at
once while requests are still served (Kubernetes needs a moment to take the pod out of its
endpoints), then after SHUTDOWN_DELAY_SECONDS uvicorn stops accepting connections and waits up to
SHUTDOWN_GRACE_SECONDS for accepted requests to finish. The gRPC port, when on, stops accepting
at the same moment and its calls in flight get the same grace, alongside HTTP's. SIGINT (Ctrl-C at
a terminal) skips the delay. A second signal exits at once.
"""

import asyncio
import gc
import logging
import signal
import socket
import sys
import time
from types import FrameType
from typing import TYPE_CHECKING

import uvicorn

from server.app import create_app
from server.connections import ConnectionGuard, connection_cap, descriptor_limit
from server.lifecycle import Models
from server.listen import ListenError, check_can_listen
from server.logs import configure_logging
from server.settings import Settings, SettingsError

if TYPE_CHECKING:  # a gRPC transport is imported only when gRPC is on
    from server.grpc_calls import FrontEnd

log = logging.getLogger("server")
_CONNECTION_CLOSE = (b"connection", b"close")
_LAST_REQUESTS_SECONDS = 2.0


class DrainingServer(uvicorn.Server):
    """uvicorn.Server with a drain phase between the first signal and the usual shutdown."""

    def __init__(
        self,
        config: uvicorn.Config,
        models: Models,
        delay_seconds: float,
        grpc: "FrontEnd | None" = None,
    ) -> None:
        super().__init__(config)
        self.models = models
        self.delay_seconds = delay_seconds
        self.grpc = grpc
        self.stop_at: float | None = None
        self._grpc_stopped: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Runs as a Python signal handler on the main thread: only set flags, the loop acts on them.
        # Signals are not recorded for re-raising, so a drained server exits with status 0.
        if self.stop_at is not None:
            self.should_exit = self.force_exit = True
            return
        delay = self.delay_seconds if sig == signal.SIGTERM else 0.0
        self.stop_at = time.monotonic() + delay
        self.models.draining = True
        self._close_after_each_answer()
        log.info(
            "draining: readiness is now 503",
            extra={"signal": signal.Signals(sig).name, "stop_accepting_in_seconds": delay},
        )

    async def on_tick(self, counter: int) -> bool:
        should_exit = await super().on_tick(counter)
        if self.stop_at is None:
            return should_exit
        self._close_after_each_answer()  # again: uvicorn renews its default headers every second
        if not self.should_exit and time.monotonic() >= self.stop_at:
            log.info("no longer accepting connections; finishing accepted requests")
            self.should_exit = True
        return self.should_exit or should_exit

    def _close_after_each_answer(self) -> None:
        """While draining, close each connection after its next answer, so no client is left
        holding an idle keep-alive connection when the listener closes. Set from the moment
        readiness turns 503 (the signal handler runs on the loop's thread, between requests)."""
        if _CONNECTION_CLOSE not in self.server_state.default_headers:
            self.server_state.default_headers = [
                *self.server_state.default_headers,
                _CONNECTION_CLOSE,
            ]

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn closes every connection with no request in progress at once, including one
        # accepted a moment ago whose request is still in flight: stop listening first and give
        # such requests a moment to arrive, so they are answered rather than reset.
        for listener in getattr(self, "servers", []):
            listener.close()
        if self.grpc is not None:
            # gRPC stops accepting now too, and its calls share HTTP's grace rather than
            # getting their own after it; the app's shutdown waits for this same stop.
            self._grpc_stopped = asyncio.create_task(self.grpc.stop(), name="grpc-stop")
        await self._wait_for_request_heads()
        await super().shutdown(sockets)

    async def _wait_for_request_heads(self) -> None:
        """Until every accepted connection has its request head in, or _LAST_REQUESTS_SECONDS.

        A client that connected just before the listener closed may send its request a moment
        later (a busy machine): uvicorn would close its connection unanswered. The guard knows
        which connections still wait for a head; without one (tests), wait the whole bound.
        """
        guard = getattr(self.config.http, "guard", None)
        deadline = time.monotonic() + _LAST_REQUESTS_SECONDS
        while not self.force_exit and time.monotonic() < deadline:
            if guard is not None and not guard.waiting:
                return
            await asyncio.sleep(0.02)


def log_start(settings: Settings) -> None:
    """The start-up line, and a warning when no API keys protect the server."""
    log.info(
        "starting",
        extra={
            "model_uri": settings.model_uri,
            "port": settings.port,
            "api_keys": len(settings.api_keys),
            "open_routes": sorted(settings.open_routes) if settings.api_keys else "all",
        },
    )
    if not settings.api_keys:
        log.warning(
            "no API keys configured: every route is open; "
            "set API_KEYS or API_KEYS_FILE to require a key"
        )


def check_grpcio() -> None:
    """The grpcio transport needs grpcio, which is a development dependency: not in the image."""
    try:
        import grpc  # noqa: F401
    except ImportError:
        raise SettingsError(
            "GRPC_TRANSPORT=grpcio needs the grpcio package, which is not installed (the image "
            "leaves it out): install it (pip install grpcio) or use GRPC_TRANSPORT=builtin"
        ) from None


def main() -> int:
    try:
        settings = Settings.from_env()
        check_can_listen(settings.host, settings.port)
        if settings.grpc_port:
            check_can_listen(settings.host, settings.grpc_port, "GRPC_PORT")
            if settings.grpc_transport == "grpcio":
                check_grpcio()
    except (SettingsError, ListenError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.access_log)
    log_start(settings)
    app = create_app(settings)
    guard = ConnectionGuard(
        settings.max_header_bytes,
        settings.header_timeout_seconds,
        # With gRPC on, HTTP and gRPC each get half (server/grpc_limits.py).
        connection_cap(
            settings.max_connections, descriptor_limit(), 2 if settings.grpc_port else 1
        ),
        app.state.metrics,
    )
    log.info(
        "connection limits",
        extra={
            "max_connections": guard.max_connections,
            "grpc_max_connections": guard.max_connections if settings.grpc_port else 0,
            "descriptor_limit": descriptor_limit(),
            "max_header_bytes": guard.max_header_bytes,
            "header_timeout_seconds": guard.header_timeout,
        },
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=guard.protocol_class(),  # uvicorn's httptools protocol, with limits
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
    )
    server = DrainingServer(
        config, app.state.models, settings.shutdown_delay_seconds, app.state.grpc
    )
    # Everything imported so far lives as long as the process: keep the collector from walking
    # it again and again (fewer and shorter pauses on the request path).
    gc.collect()
    gc.freeze()
    server.run()  # with the uvloop loop factory the config names; asyncio.run would not use it
    log.info("stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
