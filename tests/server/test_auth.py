"""ApiKeys: the bearer check on inference routes."""

import pytest
from starlette.requests import Request

from server.auth import ApiKeys
from server.errors import Unauthorized


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
