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


class _Watched(Recorder):
    """A recorder that logs, in order, the rows it builds, the rows it inserts, and its pauses."""

    def __init__(self, store: PredictionStore, **options: Any) -> None:
        super().__init__(store, Metrics(), **options)
        self.log: list[tuple[str, int]] = []

    def _build(self, pieces: Any) -> Any:
        self.log.append(("built", sum(last - first for _, first, last in pieces)))
        return super()._build(pieces)

    def _pause(self) -> None:
        self.log.append(("pause", 0))


def test_the_writer_never_handles_more_than_a_chunk_of_rows_between_pauses(
    model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    """Building and inserting are cut into chunks with a pause between, for the event loop."""
    model = load(model_dirs, "iris", "1")
    store = PredictionStore(f"sqlite:///{tmp_path / 'p.db'}")
    recorder = _Watched(store, batch_rows=1000, chunk_rows=64, flush_seconds=3600)
    connection = store.connect()
    connect = store.connect

    def traced() -> Any:  # every statement SQLite runs, executemany's rows included
        opened = connect()
        opened.set_trace_callback(  # type: ignore[attr-defined]
            lambda sql: recorder.log.append(("inserted", 1)) if "INSERT" in sql else None
        )
        return opened

    store.connect = traced  # type: ignore[method-assign]
    for i in range(300):  # one-row requests
        recorder.record(model, "champion", iris_rows(1), np.zeros(1, np.int64), [(b"s%d" % i, 1)])
    big = np.arange(4000, dtype=np.float32).reshape(1000, 4)
    recorder.record(model, "champion", big, np.zeros(1000, np.int64), [(b"big", 1000)])
    coalesced = [(b"c%d" % i, 10) for i in range(50)]
    recorder.record(model, "champion", iris_rows(500), np.ones(500, np.int64), coalesced)
    recorder.start()
    recorder.close()

    since_pause = {"built": 0, "inserted": 0}
    most = {"built": 0, "inserted": 0}
    for what, rows in recorder.log:
        if what == "pause":
            since_pause = {"built": 0, "inserted": 0}
            continue
        since_pause[what] += rows
        most[what] = max(most[what], since_pause[what])
    assert most == {"built": 64, "inserted": 64}
    assert sum(rows for what, rows in recorder.log if what == "inserted") == 1800
    found = store.run(
        connection,
        "SELECT row_index, features, prediction FROM predictions WHERE request_id = 'big' "
        "ORDER BY row_index",
    )
    assert [r[0] for r in found] == list(range(1000))
    assert np.frombuffer(found[999][1], dtype=np.float64).tolist() == [3996, 3997, 3998, 3999]
    counts = store.run(connection, "SELECT COUNT(*), COUNT(DISTINCT request_id) FROM predictions")
    assert counts == [(1800, 351)]
    connection.close()


SHAPE_CASES = [  # (champion, shadow): every combination the data plane can record
    ("iris", None),
    ("diabetes", None),
    ("iris", "iris"),
    ("diabetes", "diabetes"),
    ("iris", "diabetes"),
    ("diabetes", "iris"),
]


def record_every_shape(recorder: Recorder, model_dirs: dict[str, Path]) -> None:
    """Two coalesced requests (1 and 2 rows) for each champion and shadow combination."""
    for case, (name, shadow_name) in enumerate(SHAPE_CASES):
        model = load(model_dirs, name, "1")
        width = 4 if name == "iris" else 10
        rows = (np.arange(3 * width, dtype=np.float32).reshape(3, width) + case) / 7
        result = model.predict(rows)
        answers = result.class_indices if result.class_indices is not None else result.values
        assert answers is not None
        shadow = load(model_dirs, shadow_name, "2") if shadow_name else None
        shadow_answers = None
        if shadow is not None:
            shadow_rows = rows if shadow_name == name else np.zeros((3, 14 - width), "f4")
            shadowed = shadow.predict(shadow_rows)
            shadow_answers = (
                shadowed.class_indices if shadowed.class_indices is not None else shadowed.values
            )
        keys = [(b"case%d-a" % case, 1), (b"case%d-b" % case, 2)]
        recorder.record(model, "champion", rows, answers, keys, shadow, shadow_answers)


def expected_rows(model_dirs: dict[str, Path]) -> list[tuple[Any, ...]]:
    """What every case must store: all twelve columns, as the first recorder wrote them."""
    expected = []
    for case, (name, shadow_name) in enumerate(SHAPE_CASES):
        model = load(model_dirs, name, "1")
        width = 4 if name == "iris" else 10
        rows = (np.arange(3 * width, dtype=np.float32).reshape(3, width) + case) / 7
        result = model.predict(rows)
        shadow = load(model_dirs, shadow_name, "2") if shadow_name else None
        shadowed = None
        if shadow is not None:
            shadow_rows = rows if shadow_name == name else np.zeros((3, 14 - width), "f4")
            shadowed = shadow.predict(shadow_rows)
        for j, (request_id, index) in enumerate([("a", 0), ("b", 0), ("b", 1)]):
            label = value = shadow_label = shadow_value = None
            if result.class_indices is not None:
                label = model.classes[int(result.class_indices[j])]
            else:
                assert result.values is not None
                value = float(result.values[j])
            if shadowed is not None and shadowed.class_indices is not None:
                assert shadow is not None
                shadow_label = shadow.classes[int(shadowed.class_indices[j])]
            elif shadowed is not None and shadowed.values is not None:
                shadow_value = float(shadowed.values[j])
            expected.append(
                (f"case{case}-{request_id}", index, model.name, "1", "champion",
                 rows[j].astype(np.float64).tobytes(), label, value,
                 shadow.version if shadow is not None else None, shadow_label, shadow_value)
            )  # fmt: skip
    return expected


def all_columns(store: PredictionStore) -> list[tuple[Any, ...]]:
    connection = store.connect()
    try:
        found = store.run(
            connection,
            "SELECT request_id, row_index, model_name, model_version, variant, features, "
            "prediction, value, shadow_version, shadow_prediction, shadow_value, ts "
            "FROM predictions ORDER BY request_id, row_index",
        )
    finally:
        connection.close()
    assert all(isinstance(row[-1], float) and row[-1] > 1e9 for row in found)
    return [(*row[:5], bytes(row[5]), *row[6:11]) for row in found]


def test_every_combination_of_answers_and_shadow_is_stored_in_full(
    model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    store = PredictionStore(f"sqlite:///{tmp_path / 'p.db'}")
    recorder = Recorder(store, Metrics(), chunk_rows=2)
    record_every_shape(recorder, model_dirs)
    recorder.start()
    recorder.close()
    assert all_columns(store) == expected_rows(model_dirs)
