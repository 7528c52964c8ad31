"""`make serve` as a reader runs it: the model the variables name, on loopback, clear errors."""

import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import TrainedStore
from tests.makefile.make import clean_env
from tests.processes import REPO_ROOT, free_port, wait_for

pytestmark = pytest.mark.integration


@contextmanager
def make_serve(store: TrainedStore, log: Path, *args: str) -> Iterator[subprocess.Popen[str]]:
    env = clean_env(MLFLOW_TRACKING_URI=store.tracking_uri, SHUTDOWN_DELAY_SECONDS="0")
    with log.open("w") as out:
        process = subprocess.Popen(
            ["make", "--no-print-directory", "serve", *args],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # make and the server it starts stop together
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)


def listening_addresses(port: int) -> set[str]:
    """Local IPv4 addresses listening on `port`, from /proc/net/tcp (state 0A is LISTEN)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


def test_make_serve_serves_the_model_named_on_loopback(
    trained_store: TrainedStore, tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    with make_serve(trained_store, log, "MODEL=wine-classifier", f"PORT={port}"):
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for(url + "/ready", timeout=60)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{log.read_text()}") from None
        info = httpx.get(url + "/model/info").json()
        assert (info["name"], info["version"]) == ("wine-classifier", "1")
        assert listening_addresses(port) == {"127.0.0.1"}
    first = log.read_text().splitlines()[0]
    assert first == (
        f"serving models:/wine-classifier@production on http://127.0.0.1:{port} "
        "(API docs at /docs; Ctrl-C stops)"
    )


def test_make_serve_on_a_port_in_use_says_which_variable_to_change(
    trained_store: TrainedStore, tmp_path: Path
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        log = tmp_path / "serve.log"
        with make_serve(trained_store, log, f"PORT={port}") as process:
            assert process.wait(60) != 0
    errors = [line for line in log.read_text().splitlines() if line.startswith("error: ")]
    assert errors == [
        f"error: port {port} on 127.0.0.1 is already in use (another server?): "
        f"choose another with PORT, e.g. PORT={port + 1}"
    ]
