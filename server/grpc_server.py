"""The gRPC port on grpcio's asyncio server (GRPC_TRANSPORT=grpcio).

The methods and everything a call goes through are server/grpc_calls.py; this module only hands
grpc's calls to it. It runs on the server's own event loop, so it shares the data plane, keys,
concurrency limit and metrics with HTTP. Every method is registered as request-streaming, though
each takes one message: grpc then calls us as soon as the call's metadata is in, before the
message is read, so the shed and key checks refuse a call without receiving its message, and the
message gets the BODY_TIMEOUT_SECONDS deadline HTTP bodies get. The connection limits are
server/grpc_limits.py.
"""

import logging
from typing import Any

import grpc

from server.grpc_calls import CallMetadata, FrontEnd, Method
from server.grpc_limits import listen_address, max_rpcs, server_options

log = logging.getLogger("server.grpc")


class GrpcFrontEnd(FrontEnd):
    """The gRPC server on grpc's asyncio server (grpcio, a development dependency)."""

    def setup(self) -> None:
        self.server: grpc.aio.Server | None = None

    @property
    def listening(self) -> bool:
        return self.server is not None

    async def start(self) -> None:
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

    async def _stop(self) -> None:
        assert self.server is not None
        await self.server.stop(self.settings.shutdown_grace_seconds)

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
