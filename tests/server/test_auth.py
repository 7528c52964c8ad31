"""ApiKeys: the bearer check on inference routes."""

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from starlette.requests import Request
from starlette.testclient import TestClient

from server.app import create_app
from server.auth import DOCS as DOCS_GROUP
from server.auth import INFERENCE, METRICS, ApiKeys, needs_key
from server.auth import METADATA as METADATA_GROUP
from server.auth import PROBES as PROBES_GROUP
from server.errors import Unauthorized
from server.settings import ROUTE_GROUPS, Settings


def request_with(authorization: str | None) -> Request:
    headers = [] if authorization is None else [(b"authorization", authorization.encode())]
    return Request({"type": "http", "method": "POST", "path": "/predict", "headers": headers})


def test_no_keys_means_open() -> None:
    keys = ApiKeys(frozenset())
    assert not keys.enabled
    keys.check(request_with(None))
    keys.check(request_with("Bearer anything"))


@pytest.mark.parametrize("header", ["Bearer one", "bearer two", "BEARER one", "Bearer   two"])
def test_any_configured_key_passes(header: str) -> None:
    ApiKeys(frozenset({"one", "two"})).check(request_with(header))


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer three", "Basic one", "one", "Bearer one two", "Bearer onee",
     "Bearer on", "Token one"],
)  # fmt: skip
def test_missing_or_wrong_keys_are_refused(header: str | None) -> None:
    with pytest.raises(Unauthorized):
        ApiKeys(frozenset({"one", "two"})).check(request_with(header))


# --- which routes need a key --------------------------------------------------------------------

KEY = "k-0123456789"
PROBES = ["/health", "/ready", "/v2/health/live", "/v2/health/ready"]
METADATA = ["/model/info", "/drift", "/v2", "/v2/models/iris", "/v2/models/iris/versions/1",
            "/v2/models/iris/ready", "/v2/models/iris/versions/1/ready"]  # fmt: skip
DOCS = ["/openapi.json", "/docs"]


def app_client(**settings: Any) -> TestClient:
    # A model path that does not exist: no model loads, which no check here needs.
    base = Settings(model_uri="/nonexistent/model", retry_seconds=60)
    return TestClient(create_app(replace(base, **settings)))


def statuses(client: TestClient, paths: list[str], key: str | None) -> dict[str, int]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return {path: client.get(path, headers=headers).status_code for path in paths}


def test_with_keys_only_probes_and_metrics_are_open_by_default() -> None:
    with app_client(api_keys=frozenset({KEY})) as client:
        assert 401 not in statuses(client, [*PROBES, "/metrics"], None).values()
        refused = statuses(client, METADATA + DOCS, None)
        assert set(refused.values()) == {401}, refused
        assert 401 not in statuses(client, METADATA + DOCS, KEY).values()
        assert client.get("/model/info").headers["www-authenticate"].startswith("Bearer")
        assert client.get("/v2").json() == {"error": "an API key is required: send "
                                                     "Authorization: Bearer <key>"}  # fmt: skip


def test_open_routes_opens_the_named_groups_only() -> None:
    settings = {"api_keys": frozenset({KEY}), "open_routes": frozenset({"docs", "metadata"})}
    with app_client(**settings) as client:
        assert 401 not in statuses(client, METADATA + DOCS, None).values()
        assert client.get("/metrics").status_code == 401
        assert client.post("/predict", json={}).status_code == 401


def test_without_keys_everything_is_open() -> None:
    with app_client(open_routes=frozenset()) as client:
        assert 401 not in statuses(client, PROBES + METADATA + DOCS + ["/metrics"], None).values()


def test_the_openapi_document_marks_every_protected_route() -> None:
    with app_client(api_keys=frozenset({KEY})) as client:
        document = client.get("/openapi.json", headers={"Authorization": f"Bearer {KEY}"}).json()
    expected = {"/predict", "/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer",
                "/model/info", "/drift", "/v2", "/v2/models/{name}",
                "/v2/models/{name}/versions/{version}", "/v2/models/{name}/ready",
                "/v2/models/{name}/versions/{version}/ready", "/invocations", "/version",
                "/v1/models", "/v1/models/{name}", "/v1/models/{name}:predict", "/feedback",
                "/quality"}  # fmt: skip
    secured = set()
    for template, item in document["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            if operation.get("security") == [{"bearer": []}]:
                secured.add(template)
            assert ("401" in operation["responses"]) == (template in secured), template
    assert secured == expected


EXPECTED_GROUPS = {
    "/health": PROBES_GROUP, "/ready": PROBES_GROUP, "/v2/health/live": PROBES_GROUP,
    "/v2/health/ready": PROBES_GROUP, "/predict": INFERENCE, "/v2/models/{name}/infer": INFERENCE,
    "/v2/models/{name}/versions/{version}/infer": INFERENCE, "/metrics": METRICS,
    "/model/info": METADATA_GROUP, "/drift": METADATA_GROUP, "/v2": METADATA_GROUP,
    "/v2/models/{name}": METADATA_GROUP, "/v2/models/{name}/versions/{version}": METADATA_GROUP,
    "/v2/models/{name}/ready": METADATA_GROUP,
    "/v2/models/{name}/versions/{version}/ready": METADATA_GROUP,
    "/openapi.json": DOCS_GROUP, "/docs": DOCS_GROUP, "/invocations": INFERENCE,
    "/ping": PROBES_GROUP, "/version": METADATA_GROUP, "/v1/models": METADATA_GROUP,
    "/v1/models/{name}": METADATA_GROUP, "/v1/models/{name}:predict": INFERENCE,
    "/feedback": INFERENCE, "/quality": METADATA_GROUP,
}  # fmt: skip


def test_every_route_declares_the_group_docs_security_md_gives_it() -> None:
    with app_client() as client:
        routes = client.app.table.routes  # type: ignore[attr-defined]
    assert {route.path: route.group for route in routes} == EXPECTED_GROUPS


@pytest.mark.parametrize(
    ("group", "open_routes", "expected"),
    [
        (INFERENCE, frozenset(ROUTE_GROUPS), True),
        (PROBES_GROUP, frozenset(), False),
        (METRICS, frozenset({"metrics"}), False),
        (METRICS, frozenset(), True),
        (METADATA_GROUP, frozenset({"docs"}), True),
        (DOCS_GROUP, frozenset({"docs"}), False),
    ],
)
def test_needs_key(group: str, open_routes: frozenset[str], expected: bool) -> None:
    assert needs_key(group, open_routes) is expected
    with pytest.raises(ValueError, match="unknown route group"):
        needs_key("nonsense", open_routes)


# --- reloading the key file ---------------------------------------------------------------------


def test_a_rewritten_key_file_is_picked_up_and_a_bad_one_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "api-keys"
    path.write_text("old-key\n")
    settings = Settings.from_env(
        {"API_KEYS_FILE": str(path), "API_KEYS": "env-key", "API_KEYS_RELOAD_SECONDS": "0.1"}
    )
    keys = ApiKeys(settings.api_keys)

    def accepts(key: str) -> bool:
        try:
            keys.check(request_with(f"Bearer {key}"))
        except Unauthorized:
            return False
        return True

    def refusals() -> int:
        return [r.getMessage() for r in caplog.records].count(
            "API key file not reloaded; the keys in use stay"
        )

    async def scenario() -> None:
        task = asyncio.create_task(keys.reload_forever(settings))
        try:
            assert accepts("old-key")
            assert accepts("env-key")
            path.write_text("new-key\n")  # rotated: the old key goes, the new one comes
            await until(lambda: accepts("new-key"))
            assert not accepts("old-key")
            assert accepts("env-key")
            path.write_text("\n , \n")  # emptied by mistake: keep what works
            await until(lambda: refusals() == 1)  # read at least once (however busy the CPU)
            assert accepts("new-key")
            path.unlink()  # a Secret being swapped: the same
            await until(lambda: refusals() == 2)
            await asyncio.sleep(0.3)  # read a few times more: logged once per distinct problem
            assert accepts("new-key")
            path.write_text("newer-key")
            await until(lambda: accepts("newer-key"))
        finally:
            task.cancel()

    with caplog.at_level(logging.INFO, logger="server.auth"):
        asyncio.run(scenario())
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("API keys reloaded") == 2
    # Once per distinct problem, not once per read.
    assert messages.count("API key file not reloaded; the keys in use stay") == 2
    assert "new-key" not in caplog.text
    assert "old-key" not in caplog.text


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)
