"""SIGTERM under load: readiness turns 503 first, accepted requests complete, the process exits."""

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import TrainedStore
from tests.integration.checks import server_errors
from tests.integration.rawhttp import open_request, read_response
from tests.processes import REPO_ROOT, model_server, wait_for
from tests.samples import SETOSA

pytestmark = pytest.mark.integration

BODY = orjson.dumps({"features": SETOSA})
DELAY = 2.0
GRACE = 10.0


THREADS = 6
SLOW_REQUESTS = 4


def sigterm_under_load(trained_store: TrainedStore, tmp_path: Path, mode: str) -> dict[str, Any]:
    """SIGTERM a loaded server; check the drain; return the load driver's summary."""
    env = {
        "MLFLOW_TRACKING_URI": trained_store.tracking_uri,
        "SHUTDOWN_DELAY_SECONDS": str(DELAY),
        "SHUTDOWN_GRACE_SECONDS": str(GRACE),
    }
    with model_server(env, tmp_path) as server:
        out = tmp_path / "load.json"
        driver = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.load_driver", server.url, str(out), "30",
             str(THREADS), mode],
            cwd=REPO_ROOT,
        )  # fmt: skip
        time.sleep(1.5)  # load is flowing

        # Accepted requests still sending their bodies when the listener closes must complete.
        slow = [open_request(server.url, "/predict", len(BODY)) for _ in range(SLOW_REQUESTS)]
        for sock in slow:
            sock.sendall(BODY[:20])
        slow_results: list[int] = []

        def finish_slow() -> None:
            time.sleep(DELAY + 1.5)
            for sock in slow:
                sock.sendall(BODY[20:])
            slow_results.extend(read_response(sock)[0] for sock in slow)

        finisher = threading.Thread(target=finish_slow)
        finisher.start()

        sigterm_at = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        ready = wait_for(server.url + "/ready", status=503, timeout=1)
        assert ready.json()["reason"] == "shutting down"
        assert time.monotonic() - sigterm_at < 0.5
        assert httpx.get(server.url + "/v2/health/ready").status_code == 503
        during = httpx.post(
            server.url + "/predict", content=BODY, headers={"Content-Type": "application/json"}
        )
        assert during.status_code == 200  # still serving while load balancers catch up
        assert during.headers["connection"] == "close"

        returncode = server.process.wait(timeout=DELAY + GRACE + 5)
        exited_after = time.monotonic() - sigterm_at
        finisher.join(timeout=5)
        for sock in slow:
            sock.close()
        driver.wait(timeout=60)

        assert returncode == 0
        assert DELAY <= exited_after < DELAY + GRACE + 2
        assert slow_results == [200] * SLOW_REQUESTS
        log = server.log()
        assert "draining: readiness is now 503" in log
        assert "no longer accepting connections" in log
        assert server_errors(log) == []
        summary: dict[str, Any] = orjson.loads(out.read_bytes())
        assert summary["outcomes"]["ok"] > 200, summary
        assert summary["last_ok"] > time.time() - (time.monotonic() - sigterm_at), summary
        return summary


def test_sigterm_under_load_fails_no_accepted_request(
    trained_store: TrainedStore, tmp_path: Path
) -> None:
    """Behind a balancer that follows readiness, as in Kubernetes: not one request fails."""
    summary = sigterm_under_load(trained_store, tmp_path, "balancer")
    assert summary["outcomes"].get("failed", 0) == 0, summary


def test_clients_ignoring_readiness_see_only_refusals_and_resets(
    trained_store: TrainedStore, tmp_path: Path
) -> None:
    """Clients that keep connecting after the delay: no error answers, no dropped accepted request.

    When the listener closes, connections still in the kernel's accept queue (never accepted by
    the server) are reset; at most one per client thread can be caught there. A client sees the
    reset on reading the answer, or, when it came before the request was written, as the server
    closing without an answer: httpcore then swallows the write error to read any early answer.
    """
    summary = sigterm_under_load(trained_store, tmp_path, "blind")
    outcomes = summary["outcomes"]
    assert outcomes.get("refused", 0) > 0, summary  # it kept trying until the port closed
    reset = ("Connection reset", "Server disconnected without sending a response")
    assert all(any(r in f for r in reset) for f in summary["failures"]), summary
    assert outcomes.get("failed", 0) <= THREADS, summary


def test_a_second_signal_exits_at_once(trained_store: TrainedStore, tmp_path: Path) -> None:
    env = {
        "MLFLOW_TRACKING_URI": trained_store.tracking_uri,
        "SHUTDOWN_DELAY_SECONDS": "30",
    }
    with model_server(env, tmp_path) as server:
        server.process.send_signal(signal.SIGTERM)
        wait_for(server.url + "/ready", status=503, timeout=2)
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=5)
        assert time.monotonic() - started < 3


def test_sigint_skips_the_delay(trained_store: TrainedStore, tmp_path: Path) -> None:
    env = {
        "MLFLOW_TRACKING_URI": trained_store.tracking_uri,
        "SHUTDOWN_DELAY_SECONDS": "30",
    }
    with model_server(env, tmp_path) as server:
        started = time.monotonic()
        server.process.send_signal(signal.SIGINT)
        assert server.process.wait(timeout=5) == 0
        assert time.monotonic() - started < 3
