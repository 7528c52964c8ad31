"""An API pod killed while the Service is under load is replaced without one failed request."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from tests.cluster.release import SETOSA_LABELS, Release, pod_uids

pytestmark = pytest.mark.cluster

CLIENTS = 4
WARMUP_SECONDS = 5.0
SETTLE_SECONDS = 5.0
MAX_SECONDS = 240.0  # the load stops by itself even if the replacement never comes
MAX_REQUESTS = 20_000


class Load:
    """A few client threads posting /predict through the Service until stopped (or bounded)."""

    def __init__(self, release: Release, payload: dict[str, Any]) -> None:
        self._release = release
        self._payload = payload
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._deadline = time.monotonic() + MAX_SECONDS
        self.succeeded = 0
        self.failures: list[str] = []
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(CLIENTS)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            failure = self._one()
            with self._lock:
                if failure is None:
                    self.succeeded += 1
                else:
                    self.failures.append(failure)
                if self.succeeded + len(self.failures) >= MAX_REQUESTS:
                    self._stop.set()

    def _one(self) -> str | None:
        try:
            status, body = self._release.api_request("POST", "/predict", json=self._payload)
        except OSError as exc:  # connection refused or reset, timeouts
            return repr(exc)
        if status != 200:
            return f"HTTP {status}: {body}"
        if not isinstance(body, dict) or body.get("prediction") not in SETOSA_LABELS:
            return f"wrong answer: {body}"
        return None


def test_api_pod_killed_under_load_is_replaced_with_no_failed_requests(release: Release) -> None:
    pods = release.api_pods()
    assert len(pods) >= 2, "the Service needs at least two API replicas to survive a pod loss"
    replicas = int(release.api_deployment().obj["spec"]["replicas"])
    victim = pods[0]

    with Load(release, release.setosa_request()) as load:
        time.sleep(WARMUP_SECONDS)
        victim.delete()
        deadline = time.monotonic() + MAX_SECONDS - WARMUP_SECONDS - SETTLE_SECONDS
        replaced = False
        while time.monotonic() < deadline:
            current = release.api_pods()
            ready = [pod for pod in current if pod.ready]
            if str(victim.metadata["uid"]) not in pod_uids(current) and len(ready) == replicas:
                replaced = True
                break
            time.sleep(1)
        time.sleep(SETTLE_SECONDS)

    assert replaced, f"the killed pod {victim.name} was not replaced by a ready one"
    assert load.succeeded > 0
    assert load.failures == [], (
        f"{len(load.failures)} of {load.succeeded + len(load.failures)} requests failed: "
        f"{load.failures[:5]}"
    )
