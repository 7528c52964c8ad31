"""Recording every prediction without slowing the request path.

The event loop only appends a tuple of references (the batch's rows and answers, already
allocated for the response, and the request ids) to a bounded queue. A writer thread with its
own store connection turns them into rows and writes them in batches. When the queue holds
`buffer_rows` rows, new predictions are dropped and counted rather than queued: memory stays
bounded whatever the load and however long the store is down. On shutdown the writer drains the
queue before the process exits.

Sampling is decided by a hash of the request id, in the writer thread: every replica (and the
client) can tell from the id alone whether a prediction was recorded, which is how /feedback
tells "sampled out" apart from "unknown".
"""

import logging
import threading
import time
import zlib
from collections import deque
from collections.abc import Sequence
from itertools import repeat
from typing import Any

import numpy as np
from prometheus_client import Counter, Gauge

from server.metrics import Metrics
from server.model import Model
from server.store import Connection, PredictionStore, Shape, StoreError

log = logging.getLogger("server.recording")
# (request id, rows it sent): one entry per request of a coalesced model call, in order.
Keys = Sequence[tuple[bytes, int]]
_RETENTION_CHECK_SECONDS = 600.0
_MAX_BACKOFF_SECONDS = 10.0


# Built rows by shape (server.store): the columns every row has, then the shape's.
_Chunk = dict[Shape, list[tuple[Any, ...]]]
# A queued entry and the rows [first, last) of it that go into a chunk.
_Piece = tuple[tuple[Any, ...], int, int]
# (champion is a classifier, shadow is a classifier or None without a shadow) -> shape.
_SHAPES: dict[tuple[bool, bool | None], Shape] = {
    (True, None): ("prediction",),
    (False, None): ("value",),
    (True, True): ("prediction", "shadow_version", "shadow_prediction"),
    (True, False): ("prediction", "shadow_version", "shadow_value"),
    (False, True): ("value", "shadow_version", "shadow_prediction"),
    (False, False): ("value", "shadow_version", "shadow_value"),
}
# The writer's pause between chunks: long enough to leave the CPU, short enough not to matter.
_PAUSE_SECONDS = 0.0001
crc32 = zlib.crc32


def sampled(request_id: bytes, rate: float) -> bool:
    """Whether a request id falls in the recorded sample (the same answer on every replica)."""
    return rate >= 1.0 or zlib.crc32(request_id) < rate * 0x100000000


class RecorderMetrics:
    def __init__(self, metrics: Metrics) -> None:
        r = metrics.registry
        self.written = Counter(
            "predictions_recorded_total",
            "Predicted rows written to the prediction store.",
            registry=r,
        )
        self.dropped = Counter(
            "predictions_record_dropped_total",
            "Predicted rows not recorded: the buffer was full, or the store was down at shutdown.",
            ("reason",),
            registry=r,
        )
        self.errors = Counter(
            "prediction_store_errors_total",
            "Failed attempts to connect to or write to the prediction store.",
            registry=r,
        )
        self.buffered = Gauge(
            "prediction_record_buffer_rows",
            "Predicted rows waiting in memory to be written to the prediction store.",
            registry=r,
        )
        for reason in ("buffer_full", "shutdown"):
            self.dropped.labels(reason)


class Recorder:
    """A bounded queue filled on the event loop and drained by one writer thread."""

    def __init__(
        self,
        store: PredictionStore,
        metrics: Metrics,
        *,
        sample_rate: float = 1.0,
        buffer_rows: int = 50_000,
        batch_rows: int = 1000,
        chunk_rows: int = 100,
        flush_seconds: float = 1.0,
        retention_seconds: float = 30 * 86400.0,
    ) -> None:
        self.store = store
        self.sample_rate = sample_rate
        self.buffer_rows = buffer_rows
        self.batch_rows = batch_rows
        # The most rows the writer builds, or inserts, before it pauses for the event loop.
        self.chunk_rows = chunk_rows
        self._sample_limit = None if sample_rate >= 1.0 else sample_rate * 0x100000000
        self.flush_seconds = flush_seconds
        self.retention_seconds = retention_seconds
        self.metrics = RecorderMetrics(metrics)
        self._queue: deque[tuple[Any, ...]] = deque()
        # The entry being built, when a chunk ended inside it, and its first row not yet built.
        self._current: tuple[Any, ...] | None = None
        self._offset = 0
        # Rows queued and rows taken: each counter is written by one thread only, so their
        # difference is the queue's length in rows without a lock on the request path.
        self._added = 0
        self._taken = 0
        self.metrics.buffered.set_function(lambda: self._added - self._taken)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connection: Connection | None = None
        self._next_retention = 0.0

    @property
    def pending_rows(self) -> int:
        return self._added - self._taken

    def record(
        self,
        model: Model,
        variant: str,
        rows: np.ndarray,
        answers: np.ndarray,
        keys: Keys,
        shadow: Model | None = None,
        shadow_answers: np.ndarray | None = None,
    ) -> None:
        """Queue one model call's predictions; called on the event loop, never blocks."""
        n = len(rows)
        if self._added - self._taken + n > self.buffer_rows:
            self.metrics.dropped.labels("buffer_full").inc(n)
            return
        # A plain tuple: a NamedTuple's constructor costs the request path half a microsecond.
        self._queue.append(
            (time.time(), model, variant, rows, answers, keys, shadow, shadow_answers)
        )
        self._added += n

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="prediction-writer", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (for at most `timeout` seconds), then stop the writer."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        left = self.pending_rows
        if left:
            self.metrics.dropped.labels("shutdown").inc(left)
            log.error(
                "predictions not recorded at shutdown: the store did not take them in time",
                extra={"rows": left, "store": repr(self.store)},
            )
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    # --- the writer thread ------------------------------------------------------------------

    def _run(self) -> None:
        backoff = 0.0
        batch: list[_Chunk] = []
        taken = 0
        while True:
            stopping = self._stop.is_set()
            if not stopping:
                stopping = self._stop.wait(backoff or self.flush_seconds)
            elif backoff:  # draining for shutdown while the store fails: retry, gently
                time.sleep(min(backoff, 0.5))
            while True:
                if not batch:
                    batch, taken = self._take()
                if not batch and not taken:
                    break
                try:
                    self._write(batch)
                except StoreError as exc:
                    self.metrics.errors.inc()
                    backoff = min(max(backoff * 2, 0.5), _MAX_BACKOFF_SECONDS)
                    log.warning(
                        "cannot write predictions; retrying",
                        extra={"error": str(exc), "retry_in_seconds": backoff},
                    )
                    self._disconnect()
                    break
                backoff = 0.0
                self.metrics.written.inc(sum(len(rows) for c in batch for rows in c.values()))
                self._taken += taken
                batch, taken = [], 0
            # close() bounds the drain by joining with a timeout; until then, keep trying.
            if stopping and not self.pending_rows:
                return
            self._retention()

    def _pause(self) -> None:
        """Let the event loop have the interpreter lock: called after every chunk of rows.

        Releasing the lock is not enough (the writer would usually take it straight back
        before the waiting loop is scheduled, and the loop would then wait out the whole switch
        interval, 5 ms); a real sleep, however short, takes the writer off the CPU.
        """
        time.sleep(_PAUSE_SECONDS)

    def _take(self) -> tuple[list[_Chunk], int]:
        """Up to about batch_rows rows from the queue, built into chunks of store rows."""
        chunks: list[_Chunk] = []
        taken = 0
        queue = self._queue
        while taken < self.batch_rows:
            room = min(self.chunk_rows, self.batch_rows - taken)
            pieces: list[_Piece] = []
            size = 0
            if self._current is not None:  # the rest of an entry the last chunk ended inside
                entry, first = self._current, self._offset
                self._current = None
                rows = len(entry[3])
                size = min(rows, first + room) - first
                pieces.append((entry, first, first + size))
                if first + size < rows:
                    self._current, self._offset = entry, first + size
            while size < room and queue:
                entry = queue.popleft()
                rows = len(entry[3])
                if size + rows <= room:
                    pieces.append((entry, 0, rows))
                    size += rows
                else:
                    pieces.append((entry, 0, room - size))
                    self._current, self._offset = entry, room - size
                    size = room
            if not pieces:
                break
            chunks.append(self._build(pieces))
            taken += size
            self._pause()
        return chunks, taken

    def _build(self, pieces: list[_Piece]) -> _Chunk:
        """Store rows for the pieces, by shape; consecutive pieces of one model are built at once."""
        chunk: _Chunk = {}
        i, n = 0, len(pieces)
        while i < n:
            entry = pieces[i][0]
            model, variant = entry[1], entry[2]
            shadow = entry[6] if entry[7] is not None else None
            j = i + 1
            while j < n:
                other = pieces[j][0]
                if (
                    other[1] is not model
                    or other[2] != variant
                    or (other[6] if other[7] is not None else None) is not shadow
                ):
                    break
                j += 1
            self._add(chunk, pieces[i:j])
            i = j
        return chunk

    def _add(self, out: _Chunk, run: list[_Piece]) -> None:
        """Build the rows of pieces that share a model, variant and shadow into `out`."""
        first_entry, start, _ = run[0]
        last_entry, _, stop = run[-1]
        model, variant, shadow = first_entry[1], first_entry[2], first_entry[6]
        if len(run) == 1:
            rows = first_entry[3][start:stop]
            predicted: list[Any] = first_entry[4][start:stop].tolist()
            shadowed = None
            if first_entry[7] is not None:
                shadowed = first_entry[7][start:stop].tolist()
        else:  # whole entries but for the first's start and the last's end
            end = sum(len(piece[0][3]) for piece in run) - (len(last_entry[3]) - stop)
            rows = np.concatenate([piece[0][3] for piece in run], dtype=np.float64)[start:end]
            predicted = [a for piece in run for a in piece[0][4].tolist()][start:end]
            shadowed = None
            if first_entry[7] is not None:
                shadowed = [a for piece in run for a in piece[0][7].tolist()][start:end]
        if not predicted:
            return
        features = bytearray(np.ascontiguousarray(rows, dtype=np.float64))
        width = len(features) // len(predicted)
        if model.is_classifier:
            predicted = list(map(model.classes.__getitem__, predicted))
        # Per row: request id, row index, time; `kept` the rows sampled in, None for all.
        ids: list[str] = []
        indices: list[int] = []
        times: list[float] = []
        add_id, add_index, add_time = ids.append, indices.append, times.append
        kept: list[int] | None = None
        limit = self._sample_limit
        row = 0  # this run's row at the piece's first
        for entry, first, last in run:
            keys = entry[5]
            count = last - first
            if len(keys) == 1 and (limit is None or crc32(keys[0][0]) < limit):
                # the common case: one request per model call
                if count == 1:
                    add_id(keys[0][0].decode())
                    add_index(first)
                    add_time(entry[0])
                else:
                    ids += [keys[0][0].decode()] * count
                    indices += range(first, last)
                    times += [entry[0]] * count
                if kept is not None:
                    kept += range(row, row + count)
            else:
                if kept is None:
                    kept = list(range(len(ids)))
                key_first = 0
                for key, rows_of_key in keys:
                    key_last = key_first + rows_of_key
                    low, high = max(key_first, first), min(key_last, last)
                    if low < high and (limit is None or crc32(key) < limit):
                        ids += [key.decode()] * (high - low)
                        indices += range(low - key_first, high - key_first)
                        times += [entry[0]] * (high - low)
                        kept += range(row + low - first, row + high - first)
                    key_first = key_last
            row += count
        if kept is None:
            blobs = [features[k * width : (k + 1) * width] for k in range(row)]
        else:
            blobs = [features[k * width : (k + 1) * width] for k in kept]
            predicted = [predicted[k] for k in kept]
        name, version = repeat(model.name), repeat(model.version)
        if shadowed is None:
            shape = _SHAPES[model.is_classifier, None]
            built = zip(ids, indices, times, name, version, repeat(variant), blobs, predicted)
        else:
            if shadow.is_classifier:
                shadowed = list(map(shadow.classes.__getitem__, shadowed))
            if kept is not None:
                shadowed = [shadowed[k] for k in kept]
            shape = _SHAPES[model.is_classifier, shadow.is_classifier]
            built = zip(
                ids, indices, times, name, version, repeat(variant), blobs, predicted,
                repeat(shadow.version), shadowed,
            )  # fmt: skip
        found = out.get(shape)
        if found is None:
            out[shape] = list(built)
        else:
            found += built

    def _write(self, chunks: list[_Chunk]) -> None:
        """Insert the chunks, pausing after each, and commit them as one transaction."""
        if not any(rows for chunk in chunks for rows in chunk.values()):
            return  # every request sampled out
        if self._connection is None:
            self._connection = self.store.connect()
        for chunk in chunks:
            if any(chunk.values()):
                for shape, rows in chunk.items():
                    self.store.insert_predictions(self._connection, shape, rows)
                self._pause()
        self.store.commit(self._connection)

    def _disconnect(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception:  # already broken; nothing more to release
                log.debug("closing a broken store connection failed")
            self._connection = None

    def _retention(self) -> None:
        now = time.time()
        if now < self._next_retention or self._connection is None:
            return
        self._next_retention = now + _RETENTION_CHECK_SECONDS
        try:
            self.store.delete_older_than(self._connection, now - self.retention_seconds)
        except StoreError as exc:
            log.warning("retention cleanup failed", extra={"error": str(exc)})
