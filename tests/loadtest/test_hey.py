"""Driving hey at a fixed rate: its CSV read back, and one short real run on loopback."""

import http.server
import shutil
import threading
from collections.abc import Iterator

import pytest

from loadtest.hey import HeyError, parse_csv, run_hey

CSV = (
    "response-time,DNS+dialup,DNS,Request-write,Response-delay,Response-read,status-code,offset\n"
    + "".join(f"0.{i:04d},0,0,0,0,0,200,0.1\n" for i in range(1, 100))
    + "0.5000,0,0,0,0,0,503,0.2\n"
)


def test_percentiles_and_errors_come_from_each_request() -> None:
    result = parse_csv(CSV, rate=50, duration_s=2)
    assert (result.requests, result.rps, result.errors) == (100, 50, 1)
    assert result.p50_ms == pytest.approx(5.05, abs=0.01)  # 0.1 to 9.9 ms, and one of 500 ms
    assert result.p99_ms > 9.9  # the slow one shows at the tail


def test_no_requests_is_an_error() -> None:
    with pytest.raises(HeyError, match="no requests"):
        parse_csv("response-time,status-code\n", rate=1, duration_s=1)


class _Echo(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def echo_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@pytest.mark.skipif(shutil.which("hey") is None, reason="hey is installed by `make system-deps`")
def test_a_real_run_holds_the_rate(echo_url: str) -> None:
    result = run_hey(echo_url, b'{"a": 1}', rate=40, duration_s=2, concurrency=4)
    assert result.errors == 0
    assert 40 <= result.requests <= 90  # about 80: the rate, not as fast as the server answers
    assert 0 < result.p50_ms <= result.p99_ms
