"""One pure-ASGI middleware for every request: request id, load shedding, metrics, access log."""

import logging
import os
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.metrics import UNMATCHED_ROUTE, Metrics

log = logging.getLogger("server.access")
_REQUEST_ID = b"x-request-id"
_PRINTABLE = re.compile(rb"[\x21-\x7e]+")  # visible ASCII: safe to echo in a header and a log
_MAX_REQUEST_ID = 128
# Probes and scrapes are never shed: Kubernetes and Prometheus must see the truth under load.
_NEVER_SHED = frozenset({"/health", "/ready", "/metrics", "/v2/health/live", "/v2/health/ready"})
_SHED_BODY = b'{"detail":"the server is at its concurrency limit; retry shortly"}'


def _client_request_id(scope: Scope) -> bytes | None:
    """The client's X-Request-ID, if it sent a usable one."""
    for name, value in scope["headers"]:
        if name == _REQUEST_ID:
            if 0 < len(value) <= _MAX_REQUEST_ID and _PRINTABLE.fullmatch(value):
                return bytes(value)
            return None
    return None


class RequestMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics, max_concurrency: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_concurrency = max_concurrency
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        given = _client_request_id(scope)
        # The client's id keys the champion/challenger split; otherwise a new one is made up.
        scope["client_request_id"] = given.decode() if given is not None else None
        request_id = given if given is not None else os.urandom(8).hex().encode()
        status = 500

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

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (_REQUEST_ID, request_id)]
            await send(message)

        self.in_flight += 1
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self.in_flight -= 1
            seconds = time.perf_counter() - started
            route = scope.get("route_template", UNMATCHED_ROUTE)
            self.metrics.observe_request(scope["method"], route, status, seconds)
            if status >= 500 or log.isEnabledFor(logging.DEBUG):
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
