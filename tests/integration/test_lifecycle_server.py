"""Promotion and rollback against a real `mlflow server`, the way an operator runs them."""

import json
import os
import subprocess
from collections.abc import Iterator

import pytest
from mlflow.tracking import MlflowClient

from tests.lifecycle_cases import add_foreign_version
from tests.registry import reset_mlflow_globals, snapshot
from training import cli, lifecycle
from training.tracking import REPO_ROOT

pytestmark = pytest.mark.integration

NAME = "lifecycle-iris"


@pytest.fixture(scope="module")
def registry(mlflow_server: str) -> Iterator[MlflowClient]:
    """Versions 1 and 2 of iris with equal metrics (1 in production); 3 has wine's features."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
        patch.setenv("MLFLOW_REGISTRY_URI", mlflow_server)  # restored on leaving, unlike delenv
        for args in (
            [f"--model-name={NAME}"],
            [f"--model-name={NAME}"],
            ["--model-name=lifecycle-wine", "--dataset=wine"],
        ):
            assert cli.main(["--n-estimators=5", *args]) == 0
        client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
        assert add_foreign_version(client, NAME, donor="lifecycle-wine") == "3"
        yield client
        reset_mlflow_globals()


def make(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_TRACKING_URI"] = url
    return subprocess.run(
        ["make", "--no-print-directory", "-s", *args, f"MODEL={NAME}"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _history(client: MlflowClient) -> dict[str, list[str]]:
    return dict(json.loads(client.get_registered_model(NAME).tags.get("alias_history") or "{}"))


def test_promote_refuse_force_and_roll_back(
    registry: MlflowClient, mlflow_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    client = registry
    assert snapshot(client, NAME).aliases == {"production": "1"}

    assert lifecycle.main(["promote", f"--model={NAME}", "--version=2"]) == 0
    assert snapshot(client, NAME).aliases == {"production": "2"}
    # A second machine sees the history: it lives in the registry, not on this one.
    fresh = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    assert _history(fresh) == {"production": ["1"]}

    before = snapshot(client, NAME)
    capsys.readouterr()
    assert lifecycle.main(["promote", f"--model={NAME}", "--version=3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: refused: {NAME} version 3 has features ['alcohol', ")
    assert snapshot(client, NAME) == before

    assert lifecycle.main(["promote", f"--model={NAME}", "--version=3", "--force"]) == 0
    assert snapshot(client, NAME).aliases == {"production": "3"}
    assert _history(client) == {"production": ["1", "2"]}

    assert lifecycle.main(["rollback", f"--model={NAME}"]) == 0
    assert snapshot(client, NAME).aliases == {"production": "2"}
    assert lifecycle.main(["rollback", f"--model={NAME}"]) == 0
    assert snapshot(client, NAME).aliases == {"production": "1"}
    before = snapshot(client, NAME)
    assert lifecycle.main(["rollback", f"--model={NAME}"]) == 2
    assert snapshot(client, NAME) == before

    assert lifecycle.main(["promote", f"--model={NAME}", "--version=2", "--alias=challenger"]) == 0
    assert snapshot(client, NAME).aliases == {"production": "1", "challenger": "2"}


def test_make_targets_list_and_refuse(registry: MlflowClient, mlflow_server: str) -> None:
    listed = make(mlflow_server, "models")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0] == f"{NAME} in {mlflow_server}"
    assert lines[2].split()[:5] == ["version", "created", "(UTC)", "aliases", "n_estimators"]
    assert [line.split()[0] for line in lines[3:6]] == ["3", "2", "1"]
    accuracy = lines[2].split().index("accuracy")  # "created (UTC)" and its dates: two words
    assert all(line.split()[accuracy].startswith("0.") for line in lines[3:6])

    before = snapshot(registry, NAME)
    missing = make(mlflow_server, "promote", "VERSION=9")
    assert missing.returncode != 0
    assert missing.stderr.splitlines()[0] == (
        f"error: {NAME} has no version 9 (versions: 1, 2, 3); nothing changed"
    )
    assert snapshot(registry, NAME) == before
