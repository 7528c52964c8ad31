"""Mistakes in how the server is started get one line that says what to change."""

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.settings import Settings, SettingsError
from tests.processes import REPO_ROOT


def start(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m server` that is expected to refuse to start."""
    return subprocess.run(
        [sys.executable, "-m", "server"],
        cwd=REPO_ROOT,
        env={"PATH": "/usr/bin:/bin", "SHUTDOWN_DELAY_SECONDS": "0", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_a_port_in_use_is_one_line_naming_the_port_and_the_variable(taken_port: int) -> None:
    result = start({"HOST": "127.0.0.1", "PORT": str(taken_port)})
    assert result.returncode == 2
    assert result.stderr == (
        f"error: port {taken_port} on 127.0.0.1 is already in use (another server?): "
        f"choose another with PORT, e.g. PORT={taken_port + 1}\n"
    )


def test_a_grpc_port_in_use_is_one_line_naming_grpc_port(taken_port: int) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    result = start({"HOST": "127.0.0.1", "PORT": str(port), "GRPC_PORT": str(taken_port)})
    assert result.returncode == 2
    assert result.stderr == (
        f"error: port {taken_port} on 127.0.0.1 is already in use (another server?): "
        f"choose another with GRPC_PORT, e.g. GRPC_PORT={taken_port + 1}\n"
    )


def test_an_address_of_another_machine_is_one_line() -> None:
    result = start({"HOST": "192.0.2.1", "PORT": "8000"})  # TEST-NET-1: never local
    assert result.returncode == 2
    assert result.stderr == (
        "error: HOST=192.0.2.1 is not an address of this machine: use HOST=127.0.0.1 "
        "(this machine only) or HOST=0.0.0.0 (every interface)\n"
    )


def test_the_server_binds_loopback_unless_told_otherwise() -> None:
    """A laptop's `make serve` stays private; the image and the chart set HOST=0.0.0.0."""
    assert Settings().host == "127.0.0.1"
    assert Settings.from_env({}).host == "127.0.0.1"
    assert Settings.from_env({"HOST": "0.0.0.0"}).host == "0.0.0.0"
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "    HOST=0.0.0.0 \\\n" in dockerfile
    configmap = REPO_ROOT / "charts/platform/charts/api/templates/configmap.yaml"
    assert 'HOST: "0.0.0.0"' in configmap.read_text()


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        (
            "iris-classifier",
            "MODEL_URI='iris-classifier' is neither a models:/ URI nor a directory; "
            "did you mean MODEL_URI=models:/iris-classifier@production?",
        ),
        (
            "wine-classifier@staging",
            "MODEL_URI='wine-classifier@staging' is neither a models:/ URI nor a directory; "
            "did you mean MODEL_URI=models:/wine-classifier@staging?",
        ),
        (
            "models:/iris-classifier",
            "MODEL_URI='models:/iris-classifier' names no alias or version; "
            "did you mean MODEL_URI=models:/iris-classifier@production?",
        ),
        (
            "models:/iris-classifier/latest",
            "MODEL_URI='models:/iris-classifier/latest' names no alias or version; "
            "did you mean MODEL_URI=models:/iris-classifier@production?",
        ),
        (
            "models:/",
            "MODEL_URI='models:/' names no model: use models:/<name>@<alias> "
            "or models:/<name>/<version>",
        ),
    ],
)
def test_a_model_uri_without_its_scheme_or_alias_suggests_one(uri: str, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"MODEL_URI": uri})
    assert str(caught.value) == message


def test_the_challenger_uri_is_checked_the_same_way() -> None:
    with pytest.raises(SettingsError, match=r"^CHALLENGER_URI='iris-classifier@challenger' is"):
        Settings.from_env(
            {"CHALLENGER_URI": "iris-classifier@challenger", "CHALLENGER_MODE": "shadow"}
        )


@pytest.mark.parametrize(
    "uri",
    [
        "models:/iris-classifier@production",
        "models:/iris-classifier/3",
        "build/model",
        "/opt/model",
        "file:///opt/model",
    ],
)
def test_model_uris_that_can_be_served_are_accepted(uri: str) -> None:
    assert Settings.from_env({"MODEL_URI": uri}).model_uri == uri


def test_a_bare_name_that_is_a_directory_is_a_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "exported").mkdir()
    monkeypatch.chdir(tmp_path)
    assert Settings.from_env({"MODEL_URI": "exported"}).model_uri == "exported"


def test_a_bad_model_uri_stops_the_server_with_one_line() -> None:
    result = start({"MODEL_URI": "models:/iris-classifier"})
    assert result.returncode == 2
    assert result.stderr == (
        "error: MODEL_URI='models:/iris-classifier' names no alias or version; "
        "did you mean MODEL_URI=models:/iris-classifier@production?\n"
    )


def test_the_grpcio_transport_without_grpcio_is_one_line_naming_the_choices(
    tmp_path: Path,
) -> None:
    """The image leaves grpcio out: choosing its transport there says what to do, at start."""
    (tmp_path / "grpc.py").write_text("raise ImportError(\"No module named 'grpc'\")\n")
    with socket.socket() as one, socket.socket() as two:
        one.bind(("127.0.0.1", 0))
        two.bind(("127.0.0.1", 0))
        ports = one.getsockname()[1], two.getsockname()[1]
    result = start(
        {"HOST": "127.0.0.1", "PORT": str(ports[0]), "GRPC_PORT": str(ports[1]),
         "GRPC_TRANSPORT": "grpcio", "PYTHONPATH": str(tmp_path)}
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        "error: GRPC_TRANSPORT=grpcio needs the grpcio package, which is not installed (the "
        "image leaves it out): install it (pip install grpcio) or use GRPC_TRANSPORT=builtin\n"
    )
