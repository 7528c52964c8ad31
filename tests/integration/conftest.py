"""Fixtures for tests that run real processes on loopback."""

from collections.abc import Iterator

import pytest

from tests.mlflow_server import start_mlflow_server, stop_session


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real `mlflow server` for the session; tests keep apart by registering their own names."""
    # A bound, not a wait: on a loaded 2-core machine MLflow's start-up alone can take minutes.
    server, process = start_mlflow_server(tmp_path_factory.mktemp("mlflow-server"), timeout=240)
    yield server.url
    stop_session(process)
