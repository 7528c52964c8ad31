"""The route table: every route declared once, and everything else derived from it.

A `Route` says what a route is (method, path, endpoint, protocol), what it needs (an API key),
how it behaves under load (whether it may be shed) and how it is documented. From the table come
the dispatch the request middleware does, the shedding policy, the Starlette routes that answer
405 with `Allow`, and the OpenAPI document (`server.openapi`).
"""

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.routing import Route as StarletteRoute
from starlette.types import Scope

from server.errors import NotFound, Protocol

Endpoint = Callable[[Request], Awaitable[Response]]
# The answer a route gives when it succeeds, for the OpenAPI document:
# status -> (component schema, description, media type).
JSON = "application/json"


@dataclass(frozen=True)
class Answer:
    schema: str  # a component of the OpenAPI document
    description: str
    media_type: str = JSON


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # a template: `{name}` matches one path segment
    endpoint: Endpoint
    protocol: Protocol
    summary: str
    answers: dict[int, Answer]
    # Error statuses the route can answer (401 and 503 are added from `needs_key` and
    # `sheddable`; the body's 400/408/413/415 from `body`).
    errors: tuple[int, ...] = ()
    body: str | None = None  # the component schema of its JSON request body
    needs_key: bool = False  # refused without a valid API key when keys are configured
    sheddable: bool = True  # may be answered 503 at MAX_CONCURRENCY (probes and scrapes: never)
    in_schema: bool = True  # listed in the OpenAPI document
    segments: tuple[str, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "segments", tuple(self.path.split("/")[1:]))

    @property
    def is_static(self) -> bool:
        return "{" not in self.path

    def match(self, parts: Sequence[str]) -> dict[str, str] | None:
        """The path parameters if `parts` (the path's segments) fit this template."""
        if len(parts) != len(self.segments):
            return None
        params = {}
        for part, segment in zip(parts, self.segments, strict=True):
            if segment.startswith("{"):
                if not part:
                    return None
                params[segment[1:-1]] = part
            elif part != segment:
                return None
        return params


class TemplatedRoute(StarletteRoute):
    """A Starlette route that records its path template in the scope, so metrics label by it."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route_template"] = self.path
        return match, child_scope


class RouteTable:
    """The routes, indexed for dispatch: a dict for static paths, segment matching for the rest."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = list(routes)
        self._static: dict[tuple[str, str], Route] = {}
        self._templated: dict[str, list[Route]] = {}
        for route in self.routes:
            if route.is_static:
                key = (route.method, route.path)
                if key in self._static:
                    raise ValueError(f"{route.method} {route.path} is declared twice")
                self._static[key] = route
            else:
                self._templated.setdefault(route.method, []).append(route)
        # Paths never shed must be static: the policy is decided before any matching work.
        self.never_shed = frozenset(r.path for r in self.routes if not r.sheddable)
        assert all(r.is_static for r in self.routes if not r.sheddable)

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route for this request and its path parameters; HEAD is served by GET routes."""
        if method == "HEAD":
            method = "GET"
        route = self._static.get((method, path))
        if route is not None:
            return route, {}
        candidates = self._templated.get(method)
        if candidates:
            parts = path.split("/")[1:]
            for route in candidates:
                params = route.match(parts)
                if params is not None:
                    return route, params
        return None

    def starlette_routes(self) -> list[TemplatedRoute]:
        """The same paths for Starlette's router, which answers a wrong method with 405 + Allow.

        Requests that match a route never get this far (the dispatcher serves them, after the
        API key check), so these endpoints only ever answer 404.
        """
        methods: dict[str, list[str]] = {}
        for route in self.routes:
            methods.setdefault(route.path, []).append(route.method)
        return [
            TemplatedRoute(path, _not_dispatched, methods=verbs) for path, verbs in methods.items()
        ]


async def _not_dispatched(request: Request) -> Response:
    raise NotFound(f"no route for {request.method} {request.url.path[:200]}")
