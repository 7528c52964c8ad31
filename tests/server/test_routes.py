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


SUFFIXED = RouteTable(
    [
        route("GET", "/v1/models/{name}"),
        route("POST", "/v1/models/{name}:predict"),
    ]
)


def test_a_parameter_may_end_in_a_literal_suffix() -> None:
    matched = SUFFIXED.match("POST", "/v1/models/iris:predict")
    assert matched is not None
    assert matched[0].path == "/v1/models/{name}:predict"
    assert matched[1] == {"name": "iris"}
    # A name may hold the suffix's own characters; the suffix is the segment's end.
    assert SUFFIXED.match("POST", "/v1/models/a:predict:predict") == (
        matched[0],
        {"name": "a:predict"},
    )
    assert SUFFIXED.match("POST", "/v1/models/:predict") is None  # no name before the suffix
    assert SUFFIXED.match("POST", "/v1/models/iris:explain") is None
    assert SUFFIXED.match("POST", "/v1/models/iris") is None
    assert SUFFIXED.match("POST", "/v1/models/iris:predict/x") is None
    plain = SUFFIXED.match("GET", "/v1/models/iris")
    assert plain is not None
    assert plain[1] == {"name": "iris"}


@pytest.mark.parametrize("path", ["/v1/models/x{name}", "/v1/{name", "/v1/{na-me}", "/v1/{a}{b}"])
def test_a_malformed_template_is_refused(path: str) -> None:
    with pytest.raises(ValueError, match="segment"):
        route("GET", path)


def test_starlette_routes_answer_405_for_a_suffixed_template() -> None:
    [only] = RouteTable([route("POST", "/v1/models/{name}:predict")]).starlette_routes()
    match, scope = only.matches(
        {"type": "http", "path": "/v1/models/iris:predict", "method": "GET"}
    )
    assert match.name == "PARTIAL"  # the path is known, the method is not: 405 with Allow
    assert scope["path_params"] == {"name": "iris"}


def test_a_templated_match_is_remembered_and_the_memory_is_bounded() -> None:
    table = RouteTable([route("POST", "/v2/models/{name}/infer")])
    first = table.match("POST", "/v2/models/a/infer")
    assert first is not None
    first[1]["name"] = "changed"  # a request's own copy: the next match is not affected
    again = table.match("POST", "/v2/models/a/infer")
    assert again is not None
    assert again[1] == {"name": "a"}
    for i in range(5000):
        assert table.match("POST", f"/v2/models/m{i}/infer") is not None
    assert len(table._seen) <= 1024
    assert table.match("POST", "/v2/models/a/b/infer") is None


def test_the_most_specific_template_owns_a_path_whatever_the_method() -> None:
    # `/v1/models/x:predict` is the predict route's path: a GET there is the wrong method (405),
    # not a readiness check of a model named "x:predict".
    assert SUFFIXED.match("GET", "/v1/models/iris:predict") is None
    assert SUFFIXED.match("HEAD", "/v1/models/iris:predict") is None
    predict = SUFFIXED.match("POST", "/v1/models/iris:predict")
    assert predict is not None
    assert predict[0].path == "/v1/models/{name}:predict"
    # Declared in the other order, the same answer.
    reversed_table = RouteTable(reversed(SUFFIXED.routes))
    assert reversed_table.match("GET", "/v1/models/iris:predict") is None


def test_starlette_answers_405_with_the_allow_of_the_most_specific_path() -> None:
    routes = RouteTable(SUFFIXED.routes).starlette_routes()
    scope = {"type": "http", "path": "/v1/models/iris:predict", "method": "OPTIONS"}
    first = next(r for r in routes if r.matches(scope)[0].name != "NONE")
    assert first.path == "/v1/models/{name}:predict"
    assert first.methods == {"POST"}
