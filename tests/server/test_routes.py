"""The route table: matching, what is derived from it, and refusing a route declared twice."""

import pytest
from starlette.requests import Request
from starlette.responses import Response

from server.errors import OIP, SIMPLE
from server.routes import Answer, Route, RouteTable


async def endpoint(request: Request) -> Response:
    return Response()


def route(method: str, path: str, **kwargs: object) -> Route:
    return Route(method, path, endpoint, OIP if path.startswith("/v2") else SIMPLE, "x",
                 answers={200: Answer("X", "ok")}, **kwargs)  # type: ignore[arg-type]  # fmt: skip


TABLE = RouteTable(
    [
        route("GET", "/health", sheddable=False),
        route("POST", "/predict"),
        route("GET", "/v2/models/{name}"),
        route("GET", "/v2/models/{name}/ready"),
        route("POST", "/v2/models/{name}/infer"),
        route("POST", "/v2/models/{name}/versions/{version}/infer"),
    ]
)


def test_static_paths_match_by_method_and_path() -> None:
    matched = TABLE.match("POST", "/predict")
    assert matched is not None
    assert matched[0].path == "/predict"
    assert matched[1] == {}
    assert TABLE.match("GET", "/predict") is None
    assert TABLE.match("POST", "/predict/") is None
    assert TABLE.match("POST", "/predictions") is None


def test_head_is_served_by_get_routes() -> None:
    matched = TABLE.match("HEAD", "/health")
    assert matched is not None
    assert matched[0].method == "GET"


def test_templates_match_one_segment_per_parameter() -> None:
    matched = TABLE.match("POST", "/v2/models/iris/versions/3/infer")
    assert matched is not None
    assert matched[0].path == "/v2/models/{name}/versions/{version}/infer"
    assert matched[1] == {"name": "iris", "version": "3"}
    plain = TABLE.match("GET", "/v2/models/versions/ready")  # a model named "versions"
    assert plain is not None
    assert plain[1] == {"name": "versions"}
    assert TABLE.match("GET", "/v2/models//ready") is None  # an empty name is no name
    assert TABLE.match("GET", "/v2/models/a/b") is None
    assert TABLE.match("POST", "/v2/models/a/b/infer") is None


def test_the_shedding_policy_comes_from_the_table() -> None:
    assert TABLE.never_shed == frozenset({"/health"})


def test_a_route_declared_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="POST /predict is declared twice"):
        RouteTable([route("POST", "/predict"), route("POST", "/predict")])


def test_starlette_routes_list_every_method_of_a_path() -> None:
    table = RouteTable([route("GET", "/feedback"), route("POST", "/feedback")])
    [only] = table.starlette_routes()
    assert only.path == "/feedback"
    assert only.methods == {"GET", "HEAD", "POST"}
