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
from typing import Any, NamedTuple

import numpy as np
from prometheus_client import Counter, Gauge

from server.metrics import Metrics
from server.model import Model
from server.store import Connection, PredictionRow, PredictionStore, StoreError

log = logging.getLogger("server.recording")
# (request id, rows it sent): one entry per request of a coalesced model call, in order.
Keys = Sequence[tuple[bytes, int]]
_RETENTION_CHECK_SECONDS = 600.0
_MAX_BACKOFF_SECONDS = 10.0


class _Entry(NamedTuple):
    ts: float
    model: Model
    variant: str
    rows: np.ndarray
    answers: np.ndarray
    keys: Keys
    shadow: Model | None
    shadow_answers: np.ndarray | None


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
        flush_seconds: float = 1.0,
        retention_seconds: float = 30 * 86400.0,
    ) -> None:
        self.store = store
        self.sample_rate = sample_rate
        self.buffer_rows = buffer_rows
        self.batch_rows = batch_rows
        self.flush_seconds = flush_seconds
        self.retention_seconds = retention_seconds
        self.metrics = RecorderMetrics(metrics)
        self._queue: deque[tuple[Any, ...]] = deque()
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
        batch: list[PredictionRow] = []
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
                self.metrics.written.inc(len(batch))
                self._taken += taken
                batch, taken = [], 0
            # close() bounds the drain by joining with a timeout; until then, keep trying.
            if stopping and not self.pending_rows:
                return
            self._retention()

    def _take(self) -> tuple[list[PredictionRow], int]:
        """Up to about batch_rows rows from the queue, built into store rows."""
        rows: list[PredictionRow] = []
        taken = 0
        while self._queue and taken < self.batch_rows:
            entry = _Entry(*self._queue.popleft())
            taken += len(entry.rows)
            rows.extend(self._rows(entry))
        return rows, taken

    def _rows(self, entry: _Entry) -> list[PredictionRow]:
        model = entry.model
        features = np.ascontiguousarray(entry.rows, dtype=np.float64)
        width = features.shape[1] * 8
        blob = features.tobytes()
        answers = entry.answers.tolist()
        classes = model.classes if model.is_classifier else None
        shadow = entry.shadow
        shadow_answers = entry.shadow_answers.tolist() if entry.shadow_answers is not None else None
        shadow_classes = shadow.classes if shadow is not None and shadow.is_classifier else None
        out: list[PredictionRow] = []
        start = 0
        for key, count in entry.keys:
            if not sampled(key, self.sample_rate):
                start += count
                continue
            request_id = key.decode()
            for index in range(count):
                j = start + index
                answer = answers[j]
                shadow_version = shadow_label = shadow_value = None
                if shadow is not None and shadow_answers is not None:
                    shadow_version = shadow.version
                    if shadow_classes is not None:
                        shadow_label = shadow_classes[shadow_answers[j]]
                    else:
                        shadow_value = float(shadow_answers[j])
                out.append(
                    (
                        request_id,
                        index,
                        entry.ts,
                        model.name,
                        model.version,
                        entry.variant,
                        blob[j * width : (j + 1) * width],
                        classes[answer] if classes is not None else None,
                        None if classes is not None else float(answer),
                        shadow_version,
                        shadow_label,
                        shadow_value,
                    )
                )
            start += count
        return out

    def _write(self, rows: list[PredictionRow]) -> None:
        if not rows:
            return
        if self._connection is None:
            self._connection = self.store.connect()
        self.store.write_predictions(self._connection, rows)

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
