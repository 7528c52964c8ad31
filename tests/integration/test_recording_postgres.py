"""The recorder writes the same rows to PostgreSQL as to SQLite, every answer and shadow shape."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from demo.postgres import postgres_server
from server.metrics import Metrics
from server.recording import Recorder
from server.store import PredictionStore
from tests.model_dirs import build_model_dir
from tests.server.test_recording import all_columns, expected_rows, record_every_shape

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    with postgres_server() as uri:
        yield uri


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {name: build_model_dir(name, root / name) for name in ("iris", "diabetes")}


def test_every_shape_lands_in_postgresql_in_full(
    postgres: str, model_dirs: dict[str, Path]
) -> None:
    store = PredictionStore(postgres)
    recorder = Recorder(store, Metrics(), chunk_rows=2)
    record_every_shape(recorder, model_dirs)
    recorder.start()
    recorder.close()
    assert recorder.pending_rows == 0
    assert all_columns(store) == expected_rows(model_dirs)
