"""Unit-test fixtures for the server: models built in process, apps driven in process."""

from pathlib import Path

import pytest

from tests.model_dirs import build_model_dir

DATASETS = ("iris", "wine", "diabetes")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/server runs in process, fast: the `unit` layer."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """iris, wine and diabetes as exported model directories, built once per session."""
    root = tmp_path_factory.mktemp("models")
    return {name: build_model_dir(name, root / name) for name in DATASETS}


@pytest.fixture
def iris_dir(model_dirs: dict[str, Path]) -> Path:
    return model_dirs["iris"]
