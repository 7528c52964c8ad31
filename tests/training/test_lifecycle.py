"""Promotion, rollback and listing against a local SQLite store."""

import json
from typing import Any

import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from tests.lifecycle_cases import add_foreign_version, corrupt_onnx
from tests.registry import snapshot
from tests.training.conftest import Result, Train
from training import lifecycle


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Any:
    def run(*args: str) -> Result:
        capsys.readouterr()
        code = lifecycle.main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def two_versions(train: Train, client: MlflowClient) -> MlflowClient:
    """Model m: version 1 (production) and version 2, both iris."""
    assert train("--model-name=m").code == 0
    assert train("--model-name=m", "--random-state=2").code == 0
    return client


def _history(client: MlflowClient) -> dict[str, list[str]]:
    raw = client.get_registered_model("m").tags.get(lifecycle.HISTORY_TAG)
    return json.loads(raw) if raw else {}


def _error(result: Result, code: int = 2) -> str:
    assert result.code == code
    assert result.err.count("\n") == 1, result.err
    assert result.err.startswith("error: ")
    return result.err.strip()


def test_promote_then_rollback(two_versions: MlflowClient, cli: Any) -> None:
    client = two_versions
    result = cli("promote", "--model=m", "--version=2")
    assert (result.code, result.out) == (0, "production of m: version 1 -> version 2\n")
    assert snapshot(client, "m").aliases == {"production": "2"}
    assert _history(client) == {"production": ["1"]}

    result = cli("rollback", "--model=m")
    assert (result.code, result.out) == (0, "rolled back production of m: version 2 -> version 1\n")
    assert snapshot(client, "m").aliases == {"production": "1"}
    assert _history(client) == {}


def test_rollback_walks_back_through_the_history(two_versions: MlflowClient, cli: Any) -> None:
    client = two_versions
    assert cli("promote", "--model=m", "--version=2").code == 0
    assert cli("promote", "--model=m", "--version=1").code == 0
    assert cli("promote", "--model=m", "--version=2").code == 0
    assert _history(client) == {"production": ["1", "2", "1"]}
    for expected in ("1", "2", "1"):
        assert cli("rollback", "--model=m").code == 0
        assert snapshot(client, "m").aliases == {"production": expected}
    before = snapshot(client, "m")
    assert _error(cli("rollback", "--model=m")).startswith(
        "error: no earlier version of production is recorded for m; nothing changed"
    )
    assert snapshot(client, "m") == before


def test_rollback_with_no_history_changes_nothing(two_versions: MlflowClient, cli: Any) -> None:
    before = snapshot(two_versions, "m")
    _error(cli("rollback", "--model=m"))
    assert snapshot(two_versions, "m") == before


def test_rollback_skips_a_deleted_version(
    two_versions: MlflowClient, cli: Any, train: Train
) -> None:
    client = two_versions
    assert train("--model-name=m", "--random-state=3").code == 0
    assert cli("promote", "--model=m", "--version=2").code == 0
    assert cli("promote", "--model=m", "--version=3").code == 0
    client.delete_model_version("m", "2")
    result = cli("rollback", "--model=m")
    assert result.out == (
        "rolled back production of m: version 3 -> version 1 (skipped deleted version 2)\n"
    )
    assert snapshot(client, "m").aliases == {"production": "1"}


@pytest.mark.parametrize(
    ("version", "message"),
    [
        ("9", "error: m has no version 9 (versions: 1, 2); nothing changed"),
        ("0", "error: VERSION must be a version number like 3, got '0'"),
        ("two", "error: VERSION must be a version number like 3, got 'two'"),
    ],
)
def test_promoting_a_missing_version_changes_nothing(
    two_versions: MlflowClient, cli: Any, version: str, message: str
) -> None:
    before = snapshot(two_versions, "m")
    assert _error(cli("promote", "--model=m", f"--version={version}")) == message
    assert snapshot(two_versions, "m") == before


def test_unknown_model(two_versions: MlflowClient, cli: Any) -> None:
    assert (
        _error(cli("models", "--model=nope")) == "error: no registered model 'nope' (registered: m)"
    )
    assert _error(cli("promote", "--model=nope", "--version=1")).startswith(
        "error: no registered model 'nope'"
    )


def test_promoting_the_current_version_is_a_no_op(two_versions: MlflowClient, cli: Any) -> None:
    before = snapshot(two_versions, "m")
    result = cli("promote", "--model=m", "--version=1")
    assert (result.code, result.out) == (
        0,
        "production of m already points at version 1; nothing changed\n",
    )
    assert snapshot(two_versions, "m") == before


def test_other_aliases_are_managed_apart(two_versions: MlflowClient, cli: Any) -> None:
    client = two_versions
    result = cli("promote", "--model=m", "--version=2", "--alias=challenger")
    assert result.out == "challenger of m: nothing -> version 2\n"
    assert snapshot(client, "m").aliases == {"production": "1", "challenger": "2"}
    assert cli("promote", "--model=m", "--version=1", "--alias=challenger").code == 0
    assert _history(client) == {"challenger": ["2"]}
    assert cli("rollback", "--model=m", "--alias=challenger").code == 0
    assert snapshot(client, "m").aliases == {"production": "1", "challenger": "2"}
    _error(cli("rollback", "--model=m"))  # production has no history of its own


def test_a_version_with_other_features_is_refused(
    two_versions: MlflowClient, cli: Any, train: Train
) -> None:
    client = two_versions
    assert train("--model-name=w", "--dataset=wine").code == 0
    foreign = add_foreign_version(client, "m", donor="w")
    before = snapshot(client, "m")
    message = _error(cli("promote", "--model=m", f"--version={foreign}"))
    assert message.startswith(f"error: refused: m version {foreign} has features ['alcohol', ")
    assert "but the version it would replace has ['sepal length (cm)'," in message
    assert message.endswith("; nothing changed (FORCE=1 to promote anyway)")
    assert snapshot(client, "m") == before

    result = cli("promote", "--model=m", f"--version={foreign}", "--force")
    assert (
        result.out == f"production of m: version 1 -> version {foreign} (checks skipped: FORCE)\n"
    )
    assert snapshot(client, "m").aliases == {"production": foreign}


def test_a_version_onnxruntime_cannot_load_is_refused(two_versions: MlflowClient, cli: Any) -> None:
    client = two_versions
    corrupt_onnx(client, "m", "2")
    before = snapshot(client, "m")
    message = _error(cli("promote", "--model=m", "--version=2"))
    assert message.startswith(
        "error: refused: m version 2 would not be served: onnxruntime cannot load the model: "
    )
    assert snapshot(client, "m") == before
    assert cli("promote", "--model=m", "--version=2", "--force").code == 0
    assert snapshot(client, "m").aliases == {"production": "2"}


def test_a_failed_alias_move_leaves_the_history_as_it_was(
    two_versions: MlflowClient, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = two_versions
    assert cli("promote", "--model=m", "--version=2").code == 0
    before = snapshot(client, "m")

    def fail(*args: Any, **kwargs: Any) -> None:
        raise MlflowException("injected failure")

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", fail)
    assert _error(cli("promote", "--model=m", "--version=1"), code=1) == (
        "error: MLflow: injected failure"
    )
    assert snapshot(client, "m") == before


def test_models_lists_versions_metrics_and_aliases(two_versions: MlflowClient, cli: Any) -> None:
    assert cli("promote", "--model=m", "--version=2", "--alias=challenger").code == 0
    assert cli("promote", "--model=m", "--version=2").code == 0
    result = cli("models", "--model=m")
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[0].startswith("m in sqlite:///")
    assert lines[1].split() == ["version", "created", "(UTC)", "aliases", "metrics"]
    v2, v1 = lines[2].split(), lines[3].split()
    assert (v2[0], v2[3]) == ("2", "challenger,production")
    assert (v1[0], v1[3]) == ("1", "-")
    metrics = version_metrics(two_versions, "1")
    assert v1[4:] == [f"{key}={value:.4f}" for key, value in sorted(metrics.items())]
    assert lines[4] == "  production before: 1 (make rollback ALIAS=production)"


def version_metrics(client: MlflowClient, version: str) -> dict[str, float]:
    run_id = client.get_model_version("m", version).run_id
    assert run_id is not None
    return dict(client.get_run(run_id).data.metrics)


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        lifecycle.main(["promote", "--help"])
    assert caught.value.code == 0
    assert "--force" in capsys.readouterr().out
