"""The outermost layer of every request, and the dispatcher at the bottom of the stack.

`RequestMiddleware` wraps everything: it matches the request against the route table, gives it a
request id, sheds it at MAX_CONCURRENCY (never a probe or a scrape), puts a deadline on its body,
and records its metrics and log line. Below it sit any ordinary ASGI middleware (CORS, when
configured), then `Dispatcher`, which checks the API key and calls the matched route's endpoint
itself: Starlette's routing and exception layers cost a one-row prediction about as much as the
model does, and a matched route needs neither. Requests that matched no route (404, 405 with
`Allow`, the docs' static assets) go on to Starlette.

With no middleware configured between them, `RequestMiddleware` answers a matched route itself,
through the same `respond` the dispatcher uses: no `send` wrapper to add the request id and
catch the status, and one layer fewer, which is a tenth of `/predict`'s cost in the app.
"""

import logging
import time

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.auth import ApiKeys
from server.errors import PROTOCOLS, SHED_MESSAGE, protocol_for_path
from server.limits import BodyDeadlines, Concurrency
from server.metrics import UNMATCHED_ROUTE, Metrics
from server.request_ids import new_request_id, usable
from server.routes import Route, RouteTable
from server.web import error_response

log = logging.getLogger("server.access")
_REQUEST_ID = b"x-request-id"
_SHED_BODIES = {p.name: orjson.dumps(p.error(SHED_MESSAGE, 503)) for p in PROTOCOLS}


def _client_request_id(scope: Scope) -> bytes | None:
    """The client's X-Request-ID, if it sent a usable one."""
    for name, value in scope["headers"]:
        if name == _REQUEST_ID:
            return bytes(value) if usable(value) else None
    return None


class RequestMiddleware:
    """Request id, route matching, shedding, body deadline, metrics and the access log."""

    def __init__(
        self,
        app: ASGIApp,
        table: RouteTable,
        metrics: Metrics,
        concurrency: Concurrency,
        deadlines: BodyDeadlines,
    ) -> None:
        self.app = app
        # The dispatcher's keys when `app` is the dispatcher itself: matched routes are then
        # answered here.
        self.keys = app.keys if isinstance(app, Dispatcher) else None
        self.table = table
        self.metrics = metrics
        self.concurrency = concurrency  # shared with the gRPC front end
        self.deadlines = deadlines
        # Read once: the stack is built at start-up, after logging is configured.
        self.log_debug = log.isEnabledFor(logging.DEBUG)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        given = _client_request_id(scope)
        request_id = given if given is not None else new_request_id()
        scope["request_id"] = request_id
        method = scope["method"]
        matched = self.table.match(method, scope["path"])
        if matched is not None:
            route, scope["path_params"] = matched
            scope["route"] = route
            scope["route_template"] = route.path
            sheddable = route.sheddable
        else:
            sheddable = scope["path"] not in self.table.never_shed

        concurrency = self.concurrency
        if concurrency.limit and concurrency.in_flight >= concurrency.limit and sheddable:
            self.metrics.shed.inc()
            protocol = route.protocol if matched is not None else protocol_for_path(scope["path"])
            await _send_shed(send, request_id, _SHED_BODIES[protocol.name])
            self.metrics.observe_request(method, "shed", 503, time.perf_counter() - started)
            return

        if matched is not None and self.keys is not None:
            concurrency.in_flight += 1
            status = 500
            try:
                response = await respond(route, self.keys, scope, self.deadlines.receive(receive))
                try:
                    await send(
                        {
                            "type": "http.response.start",
                            "status": response.status_code,
                            "headers": [*response.raw_headers, (_REQUEST_ID, request_id)],
                        }
                    )
                    await send({"type": "http.response.body", "body": response.body})
                    status = response.status_code
                except Exception as exc:  # as below: the answer could not be sent, a failure
                    log.error("failed after answering", exc_info=exc,
                              extra={"request_id": request_id.decode()})  # fmt: skip
            finally:
                concurrency.in_flight -= 1
                self._finish(method, route.path, status, started, request_id)
            return

        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (_REQUEST_ID, request_id)]
            await send(message)

        concurrency.in_flight += 1
        try:
            await self.app(scope, self.deadlines.receive(receive), send_with_id)
        except Exception as exc:
            if not status:  # nothing was sent yet: answer 500 in the request's protocol
                protocol = protocol_for_path(scope["path"])
                response = error_response(protocol, exc, request_id, scope["path"])
                await response(scope, receive, send_with_id)
            else:  # a failure after the answer started still counts as one
                log.error("failed after answering", exc_info=exc,
                          extra={"request_id": request_id.decode()})  # fmt: skip
            status = 500
        finally:
            concurrency.in_flight -= 1
            self._finish(method, scope.get("route_template", UNMATCHED_ROUTE), status or 500,
                         started, request_id)  # fmt: skip

    def _finish(self, method: str, route: str, status: int, started: float,
                request_id: bytes) -> None:  # fmt: skip
        """The request's metrics, and its log line when it failed (or at DEBUG)."""
        seconds = time.perf_counter() - started
        self.metrics.observe_request(method, route, status, seconds)
        # 503 is expected (loading, draining, shedding): an error is a 500.
        failed = status >= 500 and status != 503
        if failed or self.log_debug:
            log.log(
                logging.ERROR if failed else logging.DEBUG,
                "request",
                extra={
                    "request_id": request_id.decode(),
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 3),
                },
            )


class Dispatcher:
    """Calls the matched route's endpoint, after its API key check; the rest goes to `fallback`."""

    def __init__(self, fallback: ASGIApp, keys: ApiKeys) -> None:
        self.fallback = fallback
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = scope.get("route")
        if route is None or scope["type"] != "http":
            await self.fallback(scope, receive, send)
            return
        response = await respond(route, self.keys, scope, receive)
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": response.raw_headers,
            }
        )
        await send({"type": "http.response.body", "body": response.body})


async def respond(route: Route, keys: ApiKeys, scope: Scope, receive: Receive) -> Response:
    """The matched route's answer, after its API key check; errors mapped in its protocol."""
    request = Request(scope, receive)
    try:
        if route.needs_key:
            keys.check(request)
        return await route.endpoint(request)
    except Exception as exc:  # mapped in the route's protocol: 4xx, or a logged 500
        return error_response(route.protocol, exc, scope["request_id"], scope["path"])


async def _send_shed(send: Send, request_id: bytes, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
                (b"retry-after", b"1"),
                (_REQUEST_ID, request_id),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
