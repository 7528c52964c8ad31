"""Connections that never finish a request: bounded headers, a header deadline, a connection cap.

Against a real server on loopback. Each of these used to hold memory or a descriptor for good:
64 connections sending 16 MiB headers took the process to 1.1 GiB, and idle connections were
still open minutes later, until the descriptor limit reset probes and broke the registry poll.
"""

import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.conftest import TrainedStore
from tests.integration.checks import server_errors
from tests.processes import ServerProcess, model_server
from tests.samples import SETOSA

pytestmark = pytest.mark.integration

HEADER_TIMEOUT = 1.0
MAX_HEADER = 16 * 1024


@pytest.fixture(scope="module")
def server(
    trained_store: TrainedStore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    env = {
        "MLFLOW_TRACKING_URI": trained_store.tracking_uri,
        "HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
    }
    with model_server(env, tmp_path_factory.mktemp("connections")) as process:
        yield process
        assert server_errors(process.log()) == []


def address(server: ServerProcess) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


def resident_bytes(server: ServerProcess) -> float:
    text = httpx.get(server.url + "/metrics").text
    match = re.search(r"^process_resident_memory_bytes (\S+)$", text, re.M)
    assert match
    return float(match.group(1))


def answer(sock: socket.socket, timeout: float = 10) -> bytes:
    """Everything the server sends until it closes (b"" if it closed without a word)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def send_endless_header(server: ServerProcess, megabytes: int) -> bytes:
    """Send a header of `megabytes` that never ends; the server's answer, if it closed first."""
    with socket.create_connection(address(server), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Padding: ")
        chunk = b"a" * 65536
        try:
            for _ in range(megabytes * 16):
                sock.sendall(chunk)
        except OSError:  # the server closed the connection: stop sending, read why
            pass
        return answer(sock)


def test_huge_unfinished_headers_get_431_and_hold_no_memory(server: ServerProcess) -> None:
    before = resident_bytes(server)
    answers: list[bytes] = []
    threads = [
        threading.Thread(target=lambda: answers.append(send_endless_header(server, 16)))
        for _ in range(64)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(answers) == 64
    assert all(a.startswith(b"HTTP/1.1 431 ") for a in answers), {a[:40] for a in answers}
    assert b'"the request line and headers exceed 16384 bytes"' in answers[0]
    assert resident_bytes(server) - before < 32 * 1024 * 1024
    assert httpx.get(server.url + "/health").status_code == 200


@pytest.mark.parametrize(("size", "status"), [(MAX_HEADER - 200, 200), (MAX_HEADER + 1, 431)])
def test_the_header_limit(server: ServerProcess, size: int, status: int) -> None:
    response = httpx.get(server.url + "/health", headers={"X-Padding": "a" * size})
    assert response.status_code == status


def test_idle_and_half_sent_connections_are_closed_after_the_deadline(
    server: ServerProcess,
) -> None:
    idle = [socket.create_connection(address(server)) for _ in range(50)]
    partial = [socket.create_connection(address(server)) for _ in range(10)]
    for sock in partial:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()
    try:
        idle_answers = [answer(sock, HEADER_TIMEOUT * 5) for sock in idle]
        partial_answers = [answer(sock, HEADER_TIMEOUT * 5) for sock in partial]
        elapsed = time.monotonic() - started
    finally:
        for sock in idle + partial:
            sock.close()
    assert idle_answers == [b""] * 50  # nothing sent, nothing answered: closed
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in partial_answers)
    assert elapsed < HEADER_TIMEOUT * 4


def test_a_header_trickled_a_byte_at_a_time_is_cut_off(server: ServerProcess) -> None:
    with socket.create_connection(address(server), timeout=10) as sock:
        started = time.monotonic()
        request = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
        try:
            for byte in request:
                sock.sendall(bytes([byte]))
                time.sleep(0.05)
        except OSError:
            pass
        reply = answer(sock)
    assert reply.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - started < HEADER_TIMEOUT * 4


def test_keep_alive_clients_are_not_disturbed(server: ServerProcess) -> None:
    """Requests on one connection, spread over several header deadlines, all answered."""
    with httpx.Client(base_url=server.url) as client:
        deadline = time.monotonic() + HEADER_TIMEOUT * 3
        count = 0
        while time.monotonic() < deadline:
            assert client.get("/health").status_code == 200
            count += 1
            time.sleep(HEADER_TIMEOUT / 4)
    assert count >= 10


def test_large_bodies_on_a_kept_alive_connection_are_not_counted_as_headers(
    server: ServerProcess,
) -> None:
    body = orjson.dumps({"features": SETOSA}) + b" " * 500_000  # arrives in several reads
    with httpx.Client(base_url=server.url, headers={"Content-Type": "application/json"}) as client:
        for _ in range(20):
            assert client.post("/predict", content=body).status_code == 200
            assert client.get("/health").status_code == 200


def test_at_the_descriptor_limit_probes_and_the_registry_keep_working(
    trained_store: TrainedStore, tmp_path: Path
) -> None:
    """256 descriptors: the cap (192) leaves room for the model, the registry and the log."""
    env = {
        "MLFLOW_TRACKING_URI": trained_store.tracking_uri,
        "HEADER_TIMEOUT_SECONDS": "30",  # idle connections stay for the whole test
        "MODEL_POLL_SECONDS": "0.2",  # the registry is read all the while
    }
    with model_server(env, tmp_path, max_open_files=256) as limited:
        sockets = []
        try:
            for _ in range(400):
                sockets.append(socket.create_connection(address(limited), timeout=5))
            time.sleep(0.5)  # a few registry polls with the descriptors in use
            for _ in range(5):
                assert httpx.get(limited.url + "/health", timeout=5).status_code == 200
                assert httpx.get(limited.url + "/ready", timeout=5).status_code == 200
            metrics = httpx.get(limited.url + "/metrics").text
        finally:
            for sock in sockets:
                sock.close()
        log = limited.log()
    assert "connection limit reached" in log
    assert log.count("connection limit reached") <= 2  # rate-limited, not one line each
    assert "unable to open database file" not in log
    assert "Too many open files" not in log
    evicted = re.search(r'http_connections_dropped_total\{reason="evicted"\} (\S+)', metrics)
    assert evicted
    assert float(evicted.group(1)) >= 400 - 192
    assert server_errors(log) == []
