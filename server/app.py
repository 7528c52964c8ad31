"""The application factory: settings in, a Starlette app out; nothing happens at import time."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from server.api import simple_routes
from server.auth import ROUTE_GROUPS, ApiKeys, needs_key
from server.docs import docs_routes
from server.errors import ServerError
from server.limits import BodyDeadlines
from server.metrics import Metrics
from server.middleware import RequestMiddleware
from server.model_manager import Serving
from server.oip import oip_routes
from server.registry import Registry, registry_for
from server.settings import Settings
from server.web import JSONResponse

log = logging.getLogger("server")


def _error(request: Request, status: int, message: str) -> Response:
    # The Open Inference Protocol's error object is {"error": ...}; the simple API's is {"detail"}.
    key = "error" if request.url.path.startswith("/v2") else "detail"
    headers = {"www-authenticate": 'Bearer realm="model-server"'} if status == 401 else None
    if status == 503 and "concurrency" in message:
        headers = {"retry-after": "1"}
    if status == 408:  # the rest of a trickled body may still be on its way: do not read it
        headers = {"connection": "close"}
    return JSONResponse({key: message}, status_code=status, headers=headers)


async def error_response(request: Request, exc: Exception) -> Response:
    """The one mapping from exceptions to answers: Starlette's handlers and the direct routes."""
    if isinstance(exc, ServerError):
        return _error(request, exc.status_code, exc.detail)
    if isinstance(exc, HTTPException):
        response = _error(request, exc.status_code, str(exc.detail))
        if exc.headers:  # Starlette's 405 carries the Allow header HTTP requires
            response.headers.update(exc.headers)
        return response
    log.error(
        "unhandled error",
        exc_info=exc,
        extra={
            "path": request.url.path,
            "request_id": request.scope.get("request_id", b"").decode(),
        },
    )
    return _error(request, 500, "internal error; the server log has the details")


class ModelServer(Starlette):
    """Starlette with the request middleware outside its whole stack, error handling included.

    Outside, so that the request id, metrics and log cover every answer, 500s too, and so that
    the hot routes it dispatches itself skip Starlette's layers (see `server.middleware`).
    """

    def __init__(self, *, front: Callable[[ASGIApp], ASGIApp], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._front = front

    def build_middleware_stack(self) -> ASGIApp:
        return self._front(super().build_middleware_stack())


def create_app(
    settings: Settings, registry_factory: Callable[[], Registry] | None = None
) -> ModelServer:
    """Build the app: routes, middleware, error mapping, and the model lifecycle task."""
    metrics = Metrics()
    factory = registry_factory or (
        lambda: registry_for(settings.tracking_uri, settings.registry_timeout_seconds)
    )
    serving = Serving(settings, factory, metrics)
    keys = ApiKeys(settings.api_keys)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        tasks = [
            asyncio.create_task(serving.run(), name="model-lifecycle"),
            asyncio.create_task(keys.reload_forever(settings), name="api-key-reload"),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    simple = simple_routes(settings, serving, metrics, keys)
    routes = [*simple, *oip_routes(settings, serving, keys), *docs_routes(settings, serving)]
    for route in routes:  # inference routes check the key themselves (/predict skips Starlette)
        inference = ROUTE_GROUPS.get(getattr(route, "path", "")) == "inference"
        if isinstance(route, Route) and not inference and needs_key(settings, route.path):
            route.app = keys.protect(route.app)
    direct = {("POST", "/predict"): next(r.endpoint for r in simple if r.path == "/predict")}
    deadlines = BodyDeadlines(settings.body_timeout_seconds)

    def front(stack: ASGIApp) -> ASGIApp:
        return RequestMiddleware(
            stack, metrics, settings.max_concurrency, deadlines, direct, error_response
        )

    app = ModelServer(
        front=front,
        routes=routes,
        exception_handlers={
            ServerError: error_response,
            HTTPException: error_response,
            Exception: error_response,
        },
        lifespan=lifespan,
    )
    # Starlette's trailing-slash redirect builds Location from the Host header, which the client
    # controls: an open redirect to any site. Paths are exact; a stray slash is a 404.
    app.router.redirect_slashes = False
    app.state.serving = serving
    app.state.metrics = metrics
    return app
