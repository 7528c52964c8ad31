import base64
import http.server
import threading
from pathlib import Path

import pytest

from server.registry import (
    ModelReference,
    RegistryUnavailable,
    RestRegistry,
    SqliteRegistry,
    parse_model_uri,
    redacted,
    registry_for,
)
from tests.processes import free_port


def test_parse_model_uri() -> None:
    assert parse_model_uri("models:/iris-classifier@production") == ModelReference(
        "models:/iris-classifier@production", name="iris-classifier", alias="production"
    )
    assert parse_model_uri("models:/iris-classifier/3").version == "3"
    assert parse_model_uri("/opt/model").path == Path("/opt/model")
    assert parse_model_uri("file:///opt/model").path == Path("/opt/model")
    for bad in ("models:/", "models:/x@", "models:/x/latest", "models:/@alias"):
        with pytest.raises(ValueError, match="expected models"):
            parse_model_uri(bad)


def test_registry_for_chooses_by_scheme(tmp_path: Path) -> None:
    assert isinstance(registry_for("http://mlflow:5000", 1), RestRegistry)
    assert isinstance(registry_for(f"sqlite:///{tmp_path}/mlflow.db", 1), SqliteRegistry)
    with pytest.raises(ValueError, match="MLFLOW_TRACKING_URI"):
        registry_for("postgresql://db/mlflow", 1)


def test_unreachable_server_is_unavailable_not_missing() -> None:
    registry = registry_for(f"http://127.0.0.1:{free_port()}", 1)
    with pytest.raises(RegistryUnavailable, match="cannot reach MLflow"):
        registry.resolve(parse_model_uri("models:/iris-classifier@production"))


SECRET = "s3cr3t-pa55"


@pytest.mark.parametrize(
    "uri",
    [
        f"http://admin:{SECRET}@127.0.0.1:{free_port()}",
        f"https://admin:{SECRET}@127.0.0.1:{free_port()}/mlflow/",
        f"http://{SECRET}@127.0.0.1:{free_port()}",
    ],
)
def test_credentials_in_the_tracking_uri_stay_out_of_errors(uri: str) -> None:
    registry = registry_for(uri, 1)
    with pytest.raises(RegistryUnavailable) as caught:
        registry.resolve(parse_model_uri("models:/iris-classifier@production"))
    assert SECRET not in str(caught.value)
    assert "cannot reach MLflow at http" in str(caught.value)
    with pytest.raises(ValueError, match="MLFLOW_TRACKING_URI") as refused:
        registry_for(uri.replace("http", "ftp", 1), 1)
    assert SECRET not in str(refused.value)


def test_credentials_in_the_tracking_uri_are_sent_as_basic_auth() -> None:
    seen: list[str | None] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            body = b'{"model_version": {"version": "7"}}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler) as httpd:
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        port = httpd.server_address[1]
        registry = registry_for(f"http://ad%40min:{SECRET}@127.0.0.1:{port}/", 2)
        assert registry.resolve(parse_model_uri("models:/m@production")) == "7"
        httpd.shutdown()
    expected = base64.b64encode(f"ad@min:{SECRET}".encode()).decode()
    assert seen == [f"Basic {expected}"]


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("http://u:p@host:5000/x", "http://***@host:5000/x"),
        ("https://token@host", "https://***@host"),
        ("http://host:5000/a@b", "http://host:5000/a@b"),
        ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
    ],
)
def test_redacted(uri: str, shown: str) -> None:
    assert redacted(uri) == shown
