"""The kubelet-like prober against a real HTTP server on loopback, with sub-second timings."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator

import pytest

from rehearsal.probes import Probe, Prober, check_once, parse_probe


class Flaky(http.server.BaseHTTPRequestHandler):
    """/ready answers 503 for the first `failures` calls, then 200; /health as `health`."""

    failures = 0
    health = 200
    calls = 0

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        cls = type(self)
        if self.path == "/ready":
            cls.calls += 1
            code = 503 if cls.calls <= cls.failures else 200
        else:
            code = cls.health
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def server() -> Iterator[int]:
    Flaky.failures, Flaky.health, Flaky.calls = 0, 200, 0
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield int(httpd.server_address[1])
    httpd.shutdown()


def probe(port: int, path: str, period: float = 0.05, failures: int = 3) -> Probe:
    return parse_probe(
        {
            "httpGet": {"path": path, "port": "http"},
            "periodSeconds": period,
            "failureThreshold": failures,
        },
        {"http": port},
    )


def wait_for(condition: object, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.02)


def test_status_codes_count_like_the_kubelets(server: int) -> None:
    assert check_once(probe(server, "/health"), "127.0.0.1") is None
    Flaky.health = 302
    assert check_once(probe(server, "/health"), "127.0.0.1") is None
    Flaky.health = 500
    assert "statuscode: 500" in str(check_once(probe(server, "/health"), "127.0.0.1"))
    assert "Error" in str(check_once(probe(1, "/health"), "127.0.0.1"))


def test_ready_once_readiness_passes_after_startup(server: int) -> None:
    Flaky.failures = 4
    prober = Prober(
        {"startup": probe(server, "/health"), "readiness": probe(server, "/ready")}, "127.0.0.1"
    )
    prober.start()
    wait_for(lambda: prober.state.ready)
    prober.stop()
    assert prober.state.started
    assert prober.state.ready
    assert prober.state.records["readiness"].failures == 4
    assert prober.state.failed is None


def test_liveness_failing_its_threshold_marks_the_container_failed(server: int) -> None:
    Flaky.health = 500
    prober = Prober({"liveness": probe(server, "/health", failures=2)}, "127.0.0.1")
    prober.start()
    wait_for(lambda: prober.state.failed is not None)
    prober.stop()
    assert "liveness probe failed 2 times" in str(prober.state.failed)


def test_a_startup_probe_that_never_passes_fails_within_its_budget(server: int) -> None:
    Flaky.health = 503
    startup = probe(server, "/health", failures=3)
    prober = Prober({"startup": startup, "readiness": probe(server, "/ready")}, "127.0.0.1")
    assert prober.ready_deadline() == pytest.approx(
        startup.budget() + probe(server, "/ready").budget()
    )
    prober.start()
    wait_for(lambda: prober.state.failed is not None)
    prober.stop()
    assert "startup probe failed 3 times" in str(prober.state.failed)
    assert prober.state.records["readiness"].checks == 0  # never probed before startup passed
