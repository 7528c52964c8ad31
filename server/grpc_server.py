"""The gRPC port on grpcio's asyncio server (GRPC_TRANSPORT=grpcio).

The methods and everything a call goes through are server/grpc_calls.py; this module only hands
grpc's calls to it. It runs on the server's own event loop, so it shares the data plane, keys,
concurrency limit and metrics with HTTP. Every method is registered as request-streaming, though
each takes one message: grpc then calls us as soon as the call's metadata is in, before the
message is read, so the shed and key checks refuse a call without receiving its message, and the
message gets the BODY_TIMEOUT_SECONDS deadline HTTP bodies get. The connection limits are
server/grpc_limits.py.
"""

import asyncio
import logging
from typing import Any

import grpc

from server.auth import ApiKeys
from server.dataplane import DataPlane
from server.grpc_calls import CallMetadata, Calls, Method, methods
from server.grpc_limits import listen_address, max_rpcs, server_options
from server.lifecycle import Models
from server.limits import Concurrency
from server.metrics import Metrics
from server.settings import Settings

log = logging.getLogger("server.grpc")


class GrpcFrontEnd:
    """The gRPC server: the methods of server/grpc_calls.py, started and stopped with the app."""

    def __init__(
        self,
        settings: Settings,
        models: Models,
        plane: DataPlane,
        keys: ApiKeys,
        metrics: Metrics,
        concurrency: Concurrency,
    ) -> None:
        self.settings = settings
        self.methods = methods(settings, models, plane)
        self.calls = Calls(settings, keys, metrics, concurrency)
        self.server: grpc.aio.Server | None = None
        self.port = 0  # the bound port, once started
        self._stopped: asyncio.Future[None] | None = None

    async def start(self) -> None:
        """Listen on HOST:GRPC_PORT; raise OSError naming GRPC_PORT if it cannot be bound."""
        settings = self.settings
        server = grpc.aio.server(
            options=server_options(settings), maximum_concurrent_rpcs=max_rpcs(settings)
        )
        by_service: dict[str, dict[str, grpc.RpcMethodHandler]] = {}
        for path, method in self.methods.items():
            service, name = path[1:].split("/")
            by_service.setdefault(service, {})[name] = self._handler(method)
        server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler(s, h) for s, h in by_service.items()]
        )
        address = listen_address(settings.host, settings.grpc_port)
        try:
            self.port = server.add_insecure_port(address)
        except RuntimeError:  # grpc's own message says only "Failed to bind"
            raise OSError(
                f"cannot listen for gRPC on {address} (in use, or not an address of this "
                "machine): choose another GRPC_PORT or HOST"
            ) from None
        await server.start()
        self.server = server
        log.info("gRPC listening", extra={"port": self.port, "transport": "grpcio"})

    async def stop(self) -> None:
        """Stop accepting calls; those in flight get SHUTDOWN_GRACE_SECONDS to finish.

        Called when HTTP stops accepting (so both share the grace) and again at the app's
        shutdown: the second call waits for the first.
        """
        if self.server is None:
            return
        if self._stopped is None:
            self._stopped = asyncio.ensure_future(
                self.server.stop(self.settings.shutdown_grace_seconds)
            )
        await asyncio.shield(self._stopped)

    def _handler(self, method: Method) -> grpc.RpcMethodHandler:
        run = self.calls.run

        async def call(requests: Any, context: grpc.aio.ServicerContext) -> bytes:
            metadata = CallMetadata()
            for key, value in context.invocation_metadata() or ():
                metadata.take(key, str(value))

            async def read() -> bytes | None:
                raw = await context.read()
                return None if raw is grpc.aio.EOF else bytes(raw)

            outcome = await run(method, metadata, read)
            if metadata.trailers:
                context.set_trailing_metadata(tuple(metadata.trailers))
            if outcome.payload is None:
                await context.abort(grpc.StatusCode[_NAMES[outcome.code]], outcome.message)
                raise AssertionError("abort raises")  # tells the type checker
            return outcome.payload

        return grpc.stream_unary_rpc_method_handler(call)


_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}
