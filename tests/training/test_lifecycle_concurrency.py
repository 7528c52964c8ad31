"""Promotions and rollbacks from separate processes at once, against the local SQLite store."""

import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.lifecycle_concurrency import at_once, chain_of, history_of, lifecycle_env
from tests.processes import REPO_ROOT
from tests.registry import reset_mlflow_globals, snapshot
from training.cli import main as train

CANDIDATES = ("2", "3", "4")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with model m: four iris versions with the same seed (equal metrics), 1 in production.

    Trained once; each test works on its own copy of the database (the artifacts stay shared).
    """
    database = tmp_path_factory.mktemp("concurrency-store") / "mlflow.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{database}")
        patch.setenv("MLFLOW_REGISTRY_URI", f"sqlite:///{database}")
        for _ in range(4):
            assert train(["--model-name=m", "--n-estimators=5"]) == 0
        reset_mlflow_globals()
    return database


@pytest.fixture
def tracking_uri(trained: Path, tmp_path: Path) -> str:
    database = tmp_path / "mlflow.db"
    shutil.copyfile(trained, database)
    return f"sqlite:///{database}"


@pytest.fixture
def four_versions(tracking_uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def test_concurrent_promotions_lose_no_history(
    four_versions: MlflowClient, tracking_uri: str
) -> None:
    client = four_versions
    outcomes = at_once(
        tracking_uri, [["promote", "--model=m", f"--version={v}"] for v in CANDIDATES]
    )
    assert [o.code for o in outcomes] == [0, 0, 0], [o.err for o in outcomes]
    chain = chain_of([o.move for o in outcomes], start="1")
    assert sorted(chain[1:]) == sorted(CANDIDATES)
    model = client.get_registered_model("m")
    assert snapshot(client, "m").aliases == {"production": chain[-1]}
    assert history_of(model.tags.get("alias_history")) == chain[:-1]

    # Rollbacks walk the same path back, one step each, to version 1.
    for expected in reversed(chain[:-1]):
        (outcome,) = at_once(tracking_uri, [["rollback", "--model=m"]])
        assert outcome.code == 0, outcome.err
        assert snapshot(client, "m").aliases == {"production": expected}


def test_concurrent_rollbacks_each_take_one_step(
    four_versions: MlflowClient, tracking_uri: str
) -> None:
    client = four_versions
    for version in CANDIDATES:
        (outcome,) = at_once(tracking_uri, [["promote", "--model=m", f"--version={version}"]])
        assert outcome.code == 0, outcome.err
    outcomes = at_once(tracking_uri, [["rollback", "--model=m"]] * 2)
    assert [o.code for o in outcomes] == [0, 0], [o.err for o in outcomes]
    assert sorted(o.out.split(": ")[1].strip() for o in outcomes) == [
        "version 3 -> version 2",
        "version 4 -> version 3",
    ]
    assert snapshot(client, "m").aliases == {"production": "2"}
    assert history_of(client.get_registered_model("m").tags.get("alias_history")) == ["1"]


def test_a_process_killed_inside_a_change_leaves_nothing_behind(
    four_versions: MlflowClient, tracking_uri: str
) -> None:
    """The transaction dies with its process: no half-written change, and nothing stays locked."""
    client = four_versions
    before = snapshot(client, "m")
    script = textwrap.dedent(
        """
        import os, signal
        from training.registry import open_registry
        with open_registry().update("m") as update:
            update.set_tag("alias_history", '{"production": ["1"]}')
            update.set_alias("production", "2")
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    holder = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env=lifecycle_env(tracking_uri),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert holder.returncode == -signal.SIGKILL
    assert snapshot(client, "m") == before
    (outcome,) = at_once(tracking_uri, [["promote", "--model=m", "--version=3"]], timeout=60)
    assert outcome.code == 0, outcome.err
    assert snapshot(client, "m").aliases == {"production": "3"}
