"""Unit-test fixtures for the server: models built in process, apps driven in process."""

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from server.app import create_app
from server.settings import Settings
from tests.model_dirs import build_model_dir

DATASETS = ("iris", "wine", "diabetes")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/server runs in process, fast: the `unit` layer."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """iris, wine and diabetes as exported model directories, built once per session."""
    root = tmp_path_factory.mktemp("models")
    return {name: build_model_dir(name, root / name) for name in DATASETS}


@pytest.fixture
def iris_dir(model_dirs: dict[str, Path]) -> Path:
    return model_dirs["iris"]


@contextlib.contextmanager
def serve(settings: Settings) -> Iterator[TestClient]:
    """The app in process (lifespan included), once its champion is loaded or has said why not."""
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        deadline = time.monotonic() + 10
        while client.get("/ready").json().get("reason") == "loading":
            assert time.monotonic() < deadline, "the model did not load"
            time.sleep(0.01)
        yield client


@pytest.fixture
def iris_app(iris_dir: Path) -> Iterator[TestClient]:
    """An app serving iris from its directory, with default settings."""
    with serve(Settings(model_uri=str(iris_dir))) as client:
        yield client


@pytest.fixture
def header_checks(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """One entry for each OIP request JSON checked against a model (`read_request` calls)."""
    import server.oip_requests as oip_requests

    checked: list[object] = []
    real = oip_requests.read_request

    def counted(*args: Any) -> oip_requests.InferenceRequest:
        checked.append(args)
        return real(*args)

    monkeypatch.setattr(oip_requests, "read_request", counted)
    return checked
