"""The recorder: bounded, batched, drained at shutdown, and patient with a store that is down."""

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from server.metrics import Metrics
from server.model import Model, Origin, load_model
from server.recording import Recorder, sampled
from server.registry import read_model_dir
from server.store import PredictionStore


def load(model_dirs: dict[str, Path], name: str, version: str) -> Model:
    path = model_dirs[name]
    return load_model(read_model_dir(path), Origin(str(path), "local", version))


def iris_rows(n: int) -> np.ndarray:
    return np.tile(np.asarray([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32), (n, 1))


def stored(store: PredictionStore) -> list[Any]:
    connection = store.connect()
    try:
        return store.run(
            connection,
            "SELECT request_id, row_index, model_version, variant, features, prediction, value, "
            "shadow_version, shadow_prediction FROM predictions ORDER BY request_id, row_index",
        )
    finally:
        connection.close()


def wait_until(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_rows_are_written_with_their_request_ids_features_and_shadow(
    model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    champion = load(model_dirs, "iris", "1")
    challenger = load(model_dirs, "iris", "2")
    store = PredictionStore(f"sqlite:///{tmp_path / 'p.db'}")
    recorder = Recorder(store, Metrics(), flush_seconds=0.02)
    recorder.start()
    rows = np.asarray([[5.1, 3.5, 1.4, 0.2], [7.7, 3.0, 6.1, 2.3], [5.0, 3.4, 1.5, 0.2]], "f4")
    answers = champion.predict(rows).class_indices
    assert answers is not None
    recorder.record(
        champion, "champion", rows, answers, [(b"a", 1), (b"b", 2)], challenger, answers[::-1]
    )
    recorder.close()
    found = stored(store)
    assert [(r[0], r[1], r[2], r[3]) for r in found] == [
        ("a", 0, "1", "champion"),
        ("b", 0, "1", "champion"),
        ("b", 1, "1", "champion"),
    ]
    assert np.frombuffer(found[1][4], dtype=np.float64).tolist() == pytest.approx(
        [7.7, 3.0, 6.1, 2.3], rel=1e-6
    )
    assert [r[5] for r in found] == ["setosa", "virginica", "setosa"]
    assert [r[7] for r in found] == ["2", "2", "2"]
    assert [r[8] for r in found] == ["setosa", "virginica", "setosa"][::-1]


def test_a_regressor_records_numbers(model_dirs: dict[str, Path], tmp_path: Path) -> None:
    model = load(model_dirs, "diabetes", "1")
    store = PredictionStore(f"sqlite:///{tmp_path / 'p.db'}")
    recorder = Recorder(store, Metrics())
    recorder.start()
    rows = np.zeros((2, 10), dtype=np.float32)
    values = model.predict(rows).values
    assert values is not None
    recorder.record(model, "champion", rows, values, [(b"r", 2)])
    recorder.close()
    assert [r[6] for r in stored(store)] == pytest.approx(values.tolist())


def test_the_buffer_is_bounded_and_counts_what_it_drops(
    model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    model = load(model_dirs, "iris", "1")
    metrics = Metrics()
    store = PredictionStore(f"sqlite:///{tmp_path / 'p.db'}")
    recorder = Recorder(store, metrics, buffer_rows=10)  # the writer is not started
    answers = np.zeros(8, dtype=np.int64)
    recorder.record(model, "champion", iris_rows(8), answers, [(b"x", 8)])
    recorder.record(model, "champion", iris_rows(5), answers[:5], [(b"y", 5)])  # 13 > 10
    recorder.record(model, "champion", iris_rows(2), answers[:2], [(b"z", 2)])  # 10: fits
    assert recorder.pending_rows == 10
    text = metrics.exposition()[0].decode()
    assert 'predictions_record_dropped_total{reason="buffer_full"} 5.0' in text
    assert "prediction_record_buffer_rows 10.0" in text
    recorder.start()
    recorder.close()
    assert len(stored(store)) == 10


def test_close_writes_everything_queued_even_between_flushes(
    model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    model = load(model_dirs, "iris", "1")
    store = PredictionStore(f"sqlite:///{tmp_path / 'p.db'}")
    recorder = Recorder(store, Metrics(), flush_seconds=3600, batch_rows=7)
    recorder.start()
    for i in range(50):
        recorder.record(model, "champion", iris_rows(3), np.zeros(3, np.int64), [(b"%d" % i, 3)])
    recorder.close(timeout=10)
    assert len(stored(store)) == 150


def test_a_store_that_is_down_is_retried_and_nothing_is_lost(
    model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    model = load(model_dirs, "iris", "1")
    blocker = tmp_path / "later"
    blocker.write_text("a file where the store's directory should be")
    metrics = Metrics()
    store = PredictionStore(f"sqlite:///{blocker / 'p.db'}")
    recorder = Recorder(store, metrics, flush_seconds=0.02)
    recorder.start()
    recorder.record(model, "champion", iris_rows(4), np.zeros(4, np.int64), [(b"r", 4)])
    wait_until(lambda: "prediction_store_errors_total 1.0" in metrics.exposition()[0].decode())
    assert recorder.pending_rows == 4
    blocker.unlink()  # the store comes back
    wait_until(lambda: recorder.pending_rows == 0)
    recorder.close()
    assert len(stored(store)) == 4


def test_sampling_is_a_property_of_the_request_id(
    model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    model = load(model_dirs, "iris", "1")
    store = PredictionStore(f"sqlite:///{tmp_path / 'p.db'}")
    recorder = Recorder(store, Metrics(), sample_rate=0.25)
    recorder.start()
    keys = [(b"id-%d" % i, 1) for i in range(400)]
    recorder.record(model, "champion", iris_rows(400), np.zeros(400, np.int64), keys)
    recorder.close()
    kept = {r[0] for r in stored(store)}
    assert kept == {k.decode() for k, _ in keys if sampled(k, 0.25)}
    assert 60 < len(kept) < 140  # about a quarter
    assert not sampled(b"anything", 0.0)
    assert sampled(b"anything", 1.0)
