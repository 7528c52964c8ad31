"""The assembled app: redirects and the routes' answers that need no model."""

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from server.app import create_app
from server.settings import Settings


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    app = create_app(Settings(model_uri="/nonexistent/model", retry_seconds=60))
    with TestClient(app, base_url="http://api.example") as client:
        yield client


@pytest.mark.parametrize(
    "path", ["/health/", "/ready/", "/predict/", "/v2/", "/docs/", "//evil.example/"]
)
@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "api.example"])
def test_no_redirect_points_off_site(client: TestClient, path: str, host: str) -> None:
    """Starlette's trailing-slash redirect copied the Host header into Location."""
    response = client.get(path, headers={"Host": host}, follow_redirects=False)
    location = response.headers.get("location", "")
    assert "evil" not in location
    assert not response.is_redirect, (response.status_code, location)
    assert response.status_code in (404, 405)
