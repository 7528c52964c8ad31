"""The outermost layer of every request: request id, load shedding, body deadline, metrics, log.

It also dispatches the data plane's hot routes (`POST /predict`) straight to their endpoints.
Starlette's exception, routing and response layers cost a one-row prediction about as much as
the model does; a hot route needs none of them: its path is fixed, its endpoint returns a
complete `JSONResponse`, and its errors are mapped here by the same function Starlette's
exception handlers use. Every other route goes through Starlette as usual.
"""

import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.limits import BodyDeadlines
from server.metrics import UNMATCHED_ROUTE, Metrics

log = logging.getLogger("server.access")
_REQUEST_ID = b"x-request-id"
_PRINTABLE = re.compile(rb"[\x21-\x7e]+")  # visible ASCII: safe to echo in a header and a log
_MAX_REQUEST_ID = 128
# Probes and scrapes are never shed: Kubernetes and Prometheus must see the truth under load.
_NEVER_SHED = frozenset({"/health", "/ready", "/metrics", "/v2/health/live", "/v2/health/ready"})
_SHED_BODY = b'{"detail":"the server is at its concurrency limit; retry shortly"}'

Endpoint = Callable[[Request], Awaitable[Response]]
ErrorResponse = Callable[[Request, Exception], Awaitable[Response]]


def _client_request_id(scope: Scope) -> bytes | None:
    """The client's X-Request-ID, if it sent a usable one."""
    for name, value in scope["headers"]:
        if name == _REQUEST_ID:
            if 0 < len(value) <= _MAX_REQUEST_ID and _PRINTABLE.fullmatch(value):
                return bytes(value)
            return None
    return None


class RequestMiddleware:
    """Wraps the whole Starlette stack; `direct` maps (method, path) to endpoints it calls itself."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        max_concurrency: int,
        deadlines: BodyDeadlines,
        direct: Mapping[tuple[str, str], Endpoint],
        error_response: ErrorResponse,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_concurrency = max_concurrency
        self.deadlines = deadlines
        self.direct = dict(direct)
        self.error_response = error_response
        self.in_flight = 0
        # Read once: the stack is built at start-up, after logging is configured.
        self.log_debug = log.isEnabledFor(logging.DEBUG)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        given = _client_request_id(scope)
        # The client's id if it sent a usable one, else a made-up one; either only correlates
        # log lines, so no need for os.urandom and its system call.
        request_id = given if given is not None else b"%016x" % random.getrandbits(64)
        scope["request_id"] = request_id

        if (
            self.max_concurrency
            and self.in_flight >= self.max_concurrency
            and scope["path"] not in _NEVER_SHED
        ):
            self.metrics.shed.inc()
            await _send_shed(send, request_id)
            self.metrics.observe_request(
                scope["method"], "shed", 503, time.perf_counter() - started
            )
            return

        receive = self.deadlines.receive(receive)
        endpoint = self.direct.get((scope["method"], scope["path"]))
        self.in_flight += 1
        status = 500
        try:
            if endpoint is None:
                status = await self._call_routed(scope, receive, send, request_id)
            else:  # inline rather than a method: one frame fewer on the hottest path
                scope["route_template"] = scope["path"]
                request = Request(scope, receive)
                try:
                    response = await endpoint(request)
                except Exception as exc:  # mapped as Starlette's handlers would: 4xx, logged 500
                    response = await self.error_response(request, exc)
                status = response.status_code
                await send(
                    {
                        "type": "http.response.start",
                        "status": status,
                        "headers": [*response.raw_headers, (_REQUEST_ID, request_id)],
                    }
                )
                await send({"type": "http.response.body", "body": response.body})
        finally:
            self.in_flight -= 1
            seconds = time.perf_counter() - started
            route = scope.get("route_template", UNMATCHED_ROUTE)
            self.metrics.observe_request(scope["method"], route, status, seconds)
            if status >= 500 or self.log_debug:
                log.log(
                    logging.ERROR if status >= 500 else logging.DEBUG,
                    "request",
                    extra={
                        "request_id": request_id.decode(),
                        "method": scope["method"],
                        "route": route,
                        "status": status,
                        "duration_ms": round(seconds * 1000, 3),
                    },
                )

    async def _call_routed(
        self, scope: Scope, receive: Receive, send: Send, request_id: bytes
    ) -> int:
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (_REQUEST_ID, request_id)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Starlette's ServerErrorMiddleware has logged it and answered 500 (unless the answer
            # had started), then re-raised it for the server to log again; once is enough. A
            # failure after the headers went out still counts as one.
            status = 500
        return status


async def _send_shed(send: Send, request_id: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(_SHED_BODY)).encode()),
                (b"retry-after", b"1"),
                (_REQUEST_ID, request_id),
            ],
        }
    )
    await send({"type": "http.response.body", "body": _SHED_BODY})
