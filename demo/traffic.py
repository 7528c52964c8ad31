"""Seeded production traffic with a documented shift, and delayed ground truth for part of it.

The traffic: rows drawn (seeded) from the iris dataset bundled with scikit-learn, each with a
little Gaussian noise (5% of the feature's standard deviation), sent to the replicas in turn.
The shift: from `shift()` on, the client reports petal length and petal width in millimetres
instead of centimetres (both multiplied by 10), as when an upstream system changes its unit.
The true class does not change, so a model trained on centimetres really gets worse: it has
never seen petals that long and calls almost everything virginica.

The feedback: a `label_share` of the predictions (seeded) get their true label `delay` seconds
after their answer, sent to the other replica than the one that answered.
"""

import heapq
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx
import numpy as np

PETAL_COLUMNS = (2, 3)  # petal length (cm), petal width (cm)
MILLIMETRES_PER_CENTIMETRE = 10.0


@dataclass
class TrafficStats:
    sent: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)
    labelled: int = 0
    feedback_failed: int = 0
    versions: dict[str, int] = field(default_factory=dict)


class Traffic:
    """A request loop and a feedback loop, each in its own thread, until stopped."""

    def __init__(
        self,
        replicas: Sequence[str],
        *,
        seed: int = 7,
        rate: float = 80.0,
        label_share: float = 0.5,
        delay: float = 1.0,
    ) -> None:
        from sklearn.datasets import load_iris

        iris = load_iris()
        self.features = [str(f) for f in iris.feature_names]
        self.classes = [str(c) for c in iris.target_names]
        self.X = np.asarray(iris.data, dtype=np.float64)
        self.y = np.asarray(iris.target)
        self.noise = self.X.std(axis=0) * 0.05
        self.replicas = list(replicas)
        self.rng = np.random.default_rng(seed)
        self.rate = rate
        self.label_share = label_share
        self.delay = delay
        self.shifted = False
        self.stats = TrafficStats()
        self._due: list[tuple[float, int, str, str, int]] = []  # when, order, replica, id, class
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def shift(self) -> None:
        """From now on petals are reported in millimetres."""
        self.shifted = True

    def start(self) -> None:
        for target, name in ((self._send_loop, "traffic"), (self._feedback_loop, "feedback")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    def _row(self) -> tuple[dict[str, float], int]:
        index = int(self.rng.integers(len(self.X)))
        row = self.X[index] + self.rng.normal(0, self.noise)
        row = np.maximum(row, 0.1)
        if self.shifted:
            row[list(PETAL_COLUMNS)] *= MILLIMETRES_PER_CENTIMETRE
        return dict(zip(self.features, (round(float(v), 3) for v in row), strict=True)), int(
            self.y[index]
        )

    def _send_loop(self) -> None:
        clients = [httpx.Client(base_url=url, timeout=10) for url in self.replicas]
        interval = 1.0 / self.rate
        n = 0
        next_at = time.monotonic()
        try:
            while not self._stop.is_set():
                features, truth = self._row()
                replica = n % len(clients)
                request_id = f"demo-{n:07d}"
                n += 1
                try:
                    response = clients[replica].post(
                        "/predict",
                        json={"features": features},
                        headers={"X-Request-ID": request_id},
                    )
                    ok = response.status_code == 200
                    detail = f"{response.status_code} {response.text[:200]}"
                except httpx.HTTPError as exc:
                    ok, detail = False, f"{type(exc).__name__}: {exc}"
                with self._lock:
                    self.stats.sent += 1
                    if not ok:
                        self.stats.failed += 1
                        self.stats.failures.append(f"{request_id}: {detail}")
                        continue
                    version = response.headers.get("x-model-version", "?")
                    self.stats.versions[version] = self.stats.versions.get(version, 0) + 1
                    if self.rng.random() < self.label_share:
                        other = self.replicas[(replica + 1) % len(self.replicas)]
                        due = (time.monotonic() + self.delay, n, other, request_id, truth)
                        heapq.heappush(self._due, due)
                next_at += interval
                pause = next_at - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                else:
                    next_at = time.monotonic()
        finally:
            for client in clients:
                client.close()

    def _feedback_loop(self) -> None:
        clients = {url: httpx.Client(base_url=url, timeout=10) for url in self.replicas}
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                batch: dict[str, list[dict[str, object]]] = {}
                with self._lock:
                    while self._due and self._due[0][0] <= now:
                        _, _, replica, request_id, truth = heapq.heappop(self._due)
                        item: dict[str, object] = {
                            "request_id": request_id,
                            "label": self.classes[truth],
                        }
                        batch.setdefault(replica, []).append(item)
                for replica, items in batch.items():
                    try:
                        response = clients[replica].post("/feedback", json={"feedback": items})
                        accepted = int(response.json().get("accepted", 0))
                    except (httpx.HTTPError, ValueError):
                        accepted = 0
                    with self._lock:
                        self.stats.labelled += accepted
                        self.stats.feedback_failed += len(items) - accepted
                time.sleep(0.1)
        finally:
            for client in clients.values():
                client.close()
