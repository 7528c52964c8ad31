"""The application factory: settings in, a Starlette app out; nothing happens at import time."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from server.api import simple_routes
from server.auth import ApiKeys, needs_key
from server.dataplane import DataPlane
from server.docs import docs_assets, docs_routes
from server.errors import protocol_for_path
from server.feedback import LiveQuality, StoreReader, feedback_routes
from server.kserve_v1 import kserve_v1_routes
from server.lifecycle import Models
from server.limits import BodyDeadlines, Concurrency
from server.metrics import Metrics
from server.middleware import Dispatcher, RequestMiddleware
from server.mlflow_scoring import mlflow_routes
from server.oip import oip_routes
from server.recording import Recorder
from server.registry import Credentials, Registry, registry_for
from server.routes import Route, RouteTable
from server.settings import Settings
from server.store import PredictionStore
from server.web import error_response

if TYPE_CHECKING:  # each transport is imported only when it is the one on
    from server.grpc_calls import FrontEnd


async def _starlette_error(request: Request, exc: Exception) -> Response:
    """Starlette's own answers (404, 405 with Allow) in the protocol of the path asked for."""
    return error_response(
        protocol_for_path(request.url.path), exc, request.scope.get("request_id", b"")
    )


class ModelServer(Starlette):
    """Starlette whose stack is the request middleware, the user's middleware, the dispatcher.

    Middleware added the ordinary way (`middleware=[...]`, `add_middleware`) wraps every route,
    the dispatched ones included; only requests that matched no route reach Starlette's router.
    """

    def __init__(self, *, table: RouteTable, settings: Settings, keys: ApiKeys,
                 metrics: Metrics, concurrency: Concurrency, **kwargs: object) -> None:  # fmt: skip
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.table = table
        self.settings = settings
        self.keys = keys
        self.metrics = metrics
        self.concurrency = concurrency

    def build_middleware_stack(self) -> ASGIApp:
        # No trailing-slash redirects: they would echo the client's Host header in Location.
        self.router.redirect_slashes = False
        fallback: ASGIApp = ExceptionMiddleware(
            self.router, handlers={HTTPException: _starlette_error}
        )
        app: ASGIApp = Dispatcher(fallback, self.keys)
        for cls, args, kwargs in reversed(self.user_middleware):
            app = cls(app, *args, **kwargs)
        return RequestMiddleware(
            app,
            self.table,
            self.metrics,
            self.concurrency,
            BodyDeadlines(self.settings.body_timeout_seconds),
        )


def create_app(
    settings: Settings, registry_factory: Callable[[], Registry] | None = None
) -> ModelServer:
    """Build the app: the route table, middleware, and the model lifecycle and data plane tasks."""
    metrics = Metrics()
    credentials = Credentials(settings.mlflow_username, settings.mlflow_password,
                              settings.mlflow_token)  # fmt: skip
    factory = registry_factory or (
        lambda: registry_for(settings.tracking_uri, settings.registry_timeout_seconds, credentials)
    )
    plane = DataPlane(settings, metrics, lambda: models.not_ready_reason)
    models = Models(settings, factory, metrics, plane.install)
    keys = ApiKeys(settings.api_keys)
    concurrency = Concurrency(settings.max_concurrency)
    grpc: FrontEnd | None = None
    if settings.grpc_port:
        # Imported only when on: protobuf (and grpcio) cost start-up time and memory otherwise.
        if settings.grpc_transport == "builtin":
            from server import grpc_builtin

            grpc = grpc_builtin.BuiltinFrontEnd(settings, models, plane, keys, metrics, concurrency)
        else:
            from server import grpc_server

            grpc = grpc_server.GrpcFrontEnd(settings, models, plane, keys, metrics, concurrency)
    live = loop_for(settings, plane, metrics)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if grpc is not None:  # first: a port that cannot be bound fails the start at once
            await grpc.start()
        tasks = [
            asyncio.create_task(models.run(), name="model-lifecycle"),
            asyncio.create_task(plane.run(), name="drift"),
            asyncio.create_task(keys.reload_forever(settings), name="api-key-reload"),
        ]
        if live is not None:
            assert plane.recorder is not None
            plane.recorder.start()
            tasks.append(asyncio.create_task(live.run(), name="live-quality"))
        try:
            yield
        finally:
            if grpc is not None:
                await grpc.stop()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if live is not None:
                # After uvicorn has finished every request: what they recorded is written now.
                assert plane.recorder is not None
                await asyncio.to_thread(plane.recorder.close, settings.shutdown_grace_seconds)
                live.reader.close()

    declared: list[Route] = []

    def table_routes() -> Sequence[Route]:
        return declared

    declared += [
        # Which routes need a key follows from each route's group and OPEN_ROUTES.
        replace(route, needs_key=needs_key(route.group, settings.open_routes))
        for route in (
            *simple_routes(settings, models, plane, metrics),
            *oip_routes(settings, models, plane),
            *mlflow_routes(settings, models, plane),
            *kserve_v1_routes(settings, plane),
            *feedback_routes(settings, plane, live),
            *docs_routes(settings, plane, table_routes),
        )
    ]
    table = RouteTable(declared)
    middleware = []
    if settings.cors_allow_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_allow_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
                expose_headers=["X-Request-ID", "X-Model-Version"],
            )
        )
    app = ModelServer(
        table=table,
        settings=settings,
        keys=keys,
        metrics=metrics,
        concurrency=concurrency,
        routes=[*table.starlette_routes(), docs_assets()],
        middleware=middleware,
        lifespan=lifespan,
    )
    app.state.models = models
    app.state.plane = plane
    app.state.metrics = metrics
    app.state.grpc = grpc
    app.state.live_quality = live
    return app


def loop_for(settings: Settings, plane: DataPlane, metrics: Metrics) -> LiveQuality | None:
    """The recorder (hooked into the data plane) and live quality, unless recording is off."""
    if not settings.record_predictions:
        return None
    store = PredictionStore(settings.prediction_store_uri)
    plane.recorder = Recorder(
        store,
        metrics,
        sample_rate=settings.record_sample_rate,
        buffer_rows=settings.record_buffer_rows,
        batch_rows=settings.record_batch_rows,
        flush_seconds=settings.record_flush_seconds,
        retention_seconds=settings.record_retention_days * 86400,
    )
    return LiveQuality(settings, plane, StoreReader(store), metrics)
