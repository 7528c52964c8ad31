"""The route table: every route declared once, and everything else derived from it.

A `Route` says what a route is (method, path, endpoint, protocol), what it needs (an API key),
how it behaves under load (whether it may be shed) and how it is documented. From the table come
the dispatch the request middleware does, the shedding policy, the Starlette routes that answer
405 with `Allow`, and the OpenAPI document (`server.openapi`).
"""

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.routing import Route as StarletteRoute
from starlette.types import Scope

from server.errors import NotFound, Protocol

Endpoint = Callable[[Request], Awaitable[Response]]
_SEEN_PATHS = 1024
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
    path: str  # a template: `{name}` matches one segment, `{name}:verb` one ending in `:verb`
    endpoint: Endpoint
    protocol: Protocol
    summary: str
    answers: dict[int, Answer]
    # Error statuses the route can answer (401 and 503 are added from `needs_key` and
    # `sheddable`; the body's 400/408/413/415 from `body`).
    errors: tuple[int, ...] = ()
    body: str | None = None  # the component schema of its JSON request body
    needs_key: bool = False  # refused without a valid API key when keys are configured
    # Which access group it belongs to (server.auth): the app derives `needs_key` from it and
    # OPEN_ROUTES. Undeclared means metadata, which needs a key unless opened.
    group: str = "metadata"
    sheddable: bool = True  # may be answered 503 at MAX_CONCURRENCY (probes and scrapes: never)
    in_schema: bool = True  # listed in the OpenAPI document
    segments: tuple["Segment", ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "segments", tuple(map(Segment.parse, self.path.split("/")[1:])))

    @property
    def is_static(self) -> bool:
        return "{" not in self.path

    def match(self, parts: Sequence[str]) -> dict[str, str] | None:
        """The path parameters if `parts` (the path's segments) fit this template."""
        if len(parts) != len(self.segments):
            return None
        params = {}
        for part, segment in zip(parts, self.segments, strict=True):
            if segment.param is None:
                if part != segment.literal:
                    return None
                continue
            suffix = segment.literal
            if suffix:  # `{name}:predict`: the parameter is what comes before the suffix
                if len(part) <= len(suffix) or not part.endswith(suffix):
                    return None
                part = part[: -len(suffix)]
            elif not part:
                return None
            params[segment.param] = part
        return params


@dataclass(frozen=True)
class Segment:
    """One segment of a path template: a literal, `{param}`, or `{param}` and a literal suffix."""

    param: str | None
    literal: str  # the whole segment, or the suffix after the parameter

    @classmethod
    def parse(cls, text: str) -> "Segment":
        if not text.startswith("{"):
            if "{" in text:
                raise ValueError(f"a parameter must start its path segment: {text!r}")
            return cls(None, text)
        name, closed, suffix = text[1:].partition("}")
        if not closed or not name.isidentifier() or "{" in suffix or "}" in suffix:
            raise ValueError(f"malformed path segment {text!r}")
        return cls(name, suffix)


class TemplatedRoute(StarletteRoute):
    """A Starlette route that records its path template in the scope, so metrics label by it.

    It matches only the paths the route table gives its template (`owner`), so a less specific
    template (`/v1/models/{name}`) never answers for a more specific one's path.
    """

    def __init__(self, path: str, owner: Callable[[str], str | None], **kwargs: Any) -> None:
        super().__init__(path, _not_dispatched, **kwargs)
        self.owner = owner

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            if "{" in self.path and self.owner(scope["path"]) != self.path:
                return Match.NONE, {}
            child_scope["route_template"] = self.path
        return match, child_scope


def _specificity(path: str) -> tuple[int, int]:
    """Sort key: templates with a suffixed parameter first, then those with more literals."""
    segments = [Segment.parse(part) for part in path.split("/")[1:]]
    suffixed = sum(1 for s in segments if s.param is not None and s.literal)
    literal = sum(1 for s in segments if s.param is None)
    return -suffixed, -literal


class RouteTable:
    """The routes, indexed for dispatch: a dict for static paths, segment matching for the rest.

    A path that fits several templates belongs to the most specific one (`{name}:predict` before
    `{name}`), whatever the request's method: a wrong method there is 405, not another route.
    """

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = list(routes)
        self._static: dict[tuple[str, str], Route] = {}
        by_path: dict[str, dict[str, Route]] = {}
        for route in self.routes:
            if route.is_static:
                key = (route.method, route.path)
                if key in self._static:
                    raise ValueError(f"{route.method} {route.path} is declared twice")
                self._static[key] = route
            else:
                methods = by_path.setdefault(route.path, {})
                if route.method in methods:
                    raise ValueError(f"{route.method} {route.path} is declared twice")
                methods[route.method] = route
        # One template per path, the most specific first, with its route for each method.
        self._templates = [
            (next(iter(methods.values())), methods)
            for _, methods in sorted(by_path.items(), key=lambda item: _specificity(item[0]))
        ]
        # Templated paths seen before, so a repeated path (one model's infer route) costs a dict
        # lookup; bounded, since clients choose the paths.
        self._seen: dict[tuple[str, str], tuple[Route, dict[str, str]]] = {}
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
        seen = self._seen.get((method, path))
        if seen is not None:
            return seen[0], dict(seen[1])  # a copy: the scope's params are the request's own
        parts = path.split("/")[1:]
        for template, methods in self._templates:
            params = template.match(parts)
            if params is None:
                continue
            found = methods.get(method)
            if found is None:
                return None  # the path is known, the method is not: Starlette answers 405
            if len(self._seen) >= _SEEN_PATHS:
                self._seen.clear()
            self._seen[(method, path)] = (found, params)
            return found, dict(params)
        return None

    def starlette_routes(self) -> list[TemplatedRoute]:
        """The same paths for Starlette's router, which answers a wrong method with 405 + Allow.

        Requests that match a route never get this far (the dispatcher serves them, after the
        API key check), so these endpoints only ever answer 404, and 405 with the Allow of the
        template that owns the path.
        """
        methods: dict[str, list[str]] = {}
        for route in self.routes:
            methods.setdefault(route.path, []).append(route.method)
        return [TemplatedRoute(path, self.owner, methods=verbs) for path, verbs in methods.items()]

    def owner(self, path: str) -> str | None:
        """The template a path belongs to: the most specific one it fits."""
        parts = path.split("/")[1:]
        for template, _ in self._templates:
            if template.match(parts) is not None:
                return template.path
        return None


async def _not_dispatched(request: Request) -> Response:
    raise NotFound(f"no route for {request.method} {request.url.path[:200]}")
