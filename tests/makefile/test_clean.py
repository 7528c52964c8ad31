"""`make clean` keeps the model registry; only `make clean-registry` deletes it."""

import shutil
from pathlib import Path

import pytest

from tests.makefile.make import REPO_ROOT, make, on_a_terminal


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A directory with the Makefile and what `make clean` removes or keeps."""
    shutil.copy(REPO_ROOT / "Makefile", tmp_path / "Makefile")
    for directory in (".venv", ".tools", ".mypy_cache", ".mlflow/artifacts", ".loop"):
        (tmp_path / directory).mkdir(parents=True)
    (tmp_path / ".mlflow" / "mlflow.db").write_bytes(b"registry")
    (tmp_path / ".loop" / "predictions.db").write_bytes(b"predictions")
    return tmp_path


def test_clean_keeps_the_registry_and_the_recorded_predictions(checkout: Path) -> None:
    result = make("clean", cwd=checkout)
    assert result.returncode == 0, result.stderr
    assert not (checkout / ".venv").exists()
    assert not (checkout / ".tools").exists()
    assert not (checkout / ".mypy_cache").exists()
    assert (checkout / ".mlflow" / "mlflow.db").read_bytes() == b"registry"
    assert (checkout / ".loop" / "predictions.db").read_bytes() == b"predictions"


def test_clean_predictions_deletes_only_them(checkout: Path) -> None:
    result = make("clean-predictions", cwd=checkout)
    assert (result.returncode, result.stdout) == (0, "deleted the local prediction store .loop/\n")
    assert not (checkout / ".loop").exists()
    assert (checkout / ".mlflow" / "mlflow.db").exists()


def test_clean_registry_deletes_it(checkout: Path) -> None:
    result = make("clean-registry", cwd=checkout)
    assert (result.returncode, result.stdout) == (0, "deleted the local registry .mlflow/\n")
    assert not (checkout / ".mlflow").exists()
    assert (checkout / ".venv").exists()
    again = make("clean-registry", cwd=checkout)
    assert again.stdout == "no local registry in .mlflow/; nothing deleted\n"


def test_clean_registry_asks_first_on_a_terminal(checkout: Path) -> None:
    status, output = on_a_terminal("clean-registry", cwd=checkout, answer=b"n\n")
    assert status == 0
    assert "Delete the local registry .mlflow/ with every model, version and run? [y/N]" in output
    assert "nothing deleted" in output
    assert (checkout / ".mlflow" / "mlflow.db").exists()
    status, output = on_a_terminal("clean-registry", cwd=checkout, answer=b"y\n")
    assert "deleted the local registry .mlflow/" in output
    assert not (checkout / ".mlflow").exists()
