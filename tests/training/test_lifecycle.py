"""Promotion, rollback and listing against a local SQLite store."""

import json
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from tests.lifecycle_cases import add_foreign_version, corrupt_onnx
from tests.processes import REPO_ROOT
from tests.registry import snapshot, version_run
from tests.training.conftest import Result, Train
from training import lifecycle
from training.registry import HISTORY_TAG, RegistryError, open_registry
from training.registry_sqlite import SqliteUpdate


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
    """Model m: version 1 (production) and version 2, both iris with the same metrics."""
    assert train("--model-name=m").code == 0
    assert train("--model-name=m").code == 0
    return client


def _history(client: MlflowClient, name: str = "m") -> dict[str, list[str]]:
    raw = client.get_registered_model(name).tags.get(HISTORY_TAG)
    return json.loads(raw) if raw else {}


def _error(result: Result, code: int = 2) -> str:
    assert result.code == code
    assert result.err.count("\n") == 1, result.err
    assert result.err.startswith("error: ")
    return result.err.strip()


def _last_line(result: Result) -> str:
    assert result.code == 0, result.err
    return result.out.splitlines()[-1]


def _metric(client: MlflowClient, name: str, version: str, key: str) -> float:
    return float(version_run(client, name, version).data.metrics[key])


def test_promote_then_rollback(two_versions: MlflowClient, cli: Any) -> None:
    client = two_versions
    result = cli("promote", "--model=m", "--version=2")
    assert _last_line(result) == "production of m: version 1 -> version 2"
    assert snapshot(client, "m").aliases == {"production": "2"}
    assert _history(client) == {"production": ["1"]}

    result = cli("rollback", "--model=m")
    assert (result.code, result.out) == (0, "rolled back production of m: version 2 -> version 1\n")
    assert snapshot(client, "m").aliases == {"production": "1"}
    assert _history(client) == {}


def test_promote_shows_both_versions_metrics(two_versions: MlflowClient, cli: Any) -> None:
    result = cli("promote", "--model=m", "--version=2")
    lines = result.out.splitlines()
    assert lines[0].split() == [
        "version",
        "1",
        "(production",
        "now)",
        "version",
        "2",
        "(candidate)",
    ]
    accuracy = f"{_metric(two_versions, 'm', '1', 'accuracy'):.4f}"
    assert lines[1].split() == ["accuracy", accuracy, accuracy, "equal"]
    assert [line.split()[0] for line in lines[2:4]] == ["f1_macro", "log_loss"]
    assert [line.split()[0] for line in lines[4:8]] == [
        "n_estimators",
        "max_depth",
        "test_size",
        "random_state",
    ]
    assert lines[8].strip() == "main metric: accuracy (higher is better)"


@pytest.fixture
def worse_and_better(train: Train, client: MlflowClient) -> tuple[str, str]:
    """Versions 1 and 2 of m with different accuracies: (worse, better)."""
    assert train("--model-name=m", "--random-state=3").code == 0
    assert train("--model-name=m", "--random-state=7").code == 0
    first, second = (_metric(client, "m", v, "accuracy") for v in ("1", "2"))
    assert first != second, "the seeds should give different accuracies"
    return ("1", "2") if first < second else ("2", "1")


def test_a_worse_version_is_refused_unless_forced(
    worse_and_better: tuple[str, str], client: MlflowClient, cli: Any
) -> None:
    worse, better = worse_and_better
    client.set_registered_model_alias("m", "production", better)
    before = snapshot(client, "m")
    result = cli("promote", "--model=m", f"--version={worse}")
    ours, theirs = (f"{_metric(client, 'm', v, 'accuracy'):.4f}" for v in (worse, better))
    assert _error(result) == (
        f"error: refused: m version {worse} has lower accuracy ({ours}) than version {better} "
        f"({theirs}), which production points at; nothing changed (FORCE=1 to promote anyway)"
    )
    assert result.out.splitlines()[1].split() == ["accuracy", theirs, ours, "worse"]
    assert "note: evaluated on different held-out rows (random_state " in result.out
    assert snapshot(client, "m") == before

    forced = cli("promote", "--model=m", f"--version={worse}", "--force")
    assert _last_line(forced) == (
        f"production of m: version {better} -> version {worse} (checks skipped: FORCE)"
    )
    assert snapshot(client, "m").aliases == {"production": worse}
    # And back: the better version is promoted without force.
    assert _last_line(cli("promote", "--model=m", f"--version={better}")).endswith(
        f"version {worse} -> version {better}"
    )


def test_regression_refuses_a_higher_rmse(train: Train, client: MlflowClient, cli: Any) -> None:
    name = "diabetes-regressor"
    assert train("--dataset=diabetes", "--random-state=3").code == 0
    assert train("--dataset=diabetes", "--random-state=7").code == 0
    rmse = {v: _metric(client, name, v, "rmse") for v in ("1", "2")}
    worse = max(rmse, key=rmse.__getitem__)
    better = min(rmse, key=rmse.__getitem__)
    client.set_registered_model_alias(name, "production", better)
    message = _error(cli("promote", f"--model={name}", f"--version={worse}"))
    assert f"has higher rmse ({rmse[worse]:.4f}) than version {better}" in message
    listed = cli("models", f"--model={name}").out.splitlines()
    assert listed[1].strip() == "main metric: rmse (lower is better)"


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
    assert train("--model-name=m").code == 0
    assert cli("promote", "--model=m", "--version=2").code == 0
    assert cli("promote", "--model=m", "--version=3").code == 0
    client.delete_model_version("m", "2")
    result = cli("rollback", "--model=m")
    assert result.out == (
        "rolled back production of m: version 3 -> version 1 (skipped deleted version 2)\n"
    )
    assert snapshot(client, "m").aliases == {"production": "1"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--version=9"], "error: m has no version 9 (versions: 1, 2); nothing changed"),
        (["--version=0"], "error: VERSION must be a version number like 3, got '0'"),
        (["--version=two"], "error: VERSION must be a version number like 3, got 'two'"),
        (
            ["--version=2", "--alias=latest"],
            "error: ALIAS must be letters, digits, _ or - (not latest or v<number>), got 'latest'",
        ),
        (
            ["--version=2", "--alias=a b"],
            "error: ALIAS must be letters, digits, _ or - (not latest or v<number>), got 'a b'",
        ),
    ],
)
def test_bad_promotions_change_nothing(
    two_versions: MlflowClient, cli: Any, args: list[str], message: str
) -> None:
    before = snapshot(two_versions, "m")
    assert _error(cli("promote", "--model=m", *args)) == message
    assert snapshot(two_versions, "m") == before


def test_unknown_model(two_versions: MlflowClient, cli: Any) -> None:
    assert (
        _error(cli("models", "--model=nope")) == "error: no registered model 'nope' (registered: m)"
    )
    assert _error(cli("promote", "--model=nope", "--version=1")).startswith(
        "error: no registered model 'nope'"
    )
    assert _error(cli("rollback", "--model=nope")).startswith("error: no registered model 'nope'")


def test_a_missing_store_is_one_line(
    cli: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/none/mlflow.db")
    assert _error(cli("models")) == (
        f"error: no MLflow store at {tmp_path}/none/mlflow.db; run make train first"
    )
    assert not (tmp_path / "none").exists()  # reading never creates a store


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
    assert _last_line(result) == "challenger of m: nothing -> version 2"
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
    assert _last_line(result) == (
        f"production of m: version 1 -> version {foreign} (checks skipped: FORCE)"
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
        raise RegistryError("injected failure")

    monkeypatch.setattr(SqliteUpdate, "set_alias", fail)
    assert _error(cli("promote", "--model=m", "--version=1"), code=1) == (
        "error: MLflow: injected failure"
    )
    assert snapshot(client, "m") == before  # the history tag written first was rolled back


def test_models_lists_versions_parameters_metrics_and_aliases(
    two_versions: MlflowClient, cli: Any
) -> None:
    assert cli("promote", "--model=m", "--version=2", "--alias=challenger").code == 0
    assert cli("promote", "--model=m", "--version=2").code == 0
    result = cli("models", "--model=m")
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[0].startswith("m in sqlite:///")
    assert lines[1].strip() == "main metric: accuracy (higher is better)"
    assert lines[2].split() == [
        *("version", "created", "(UTC)", "aliases"),
        *("n_estimators", "max_depth", "test_size", "random_state"),
        *("accuracy", "f1_macro", "log_loss"),
    ]
    v2, v1 = lines[3].split(), lines[4].split()
    assert (v2[0], v2[3]) == ("2", "challenger,production")
    assert (v1[0], v1[3]) == ("1", "-")
    assert v1[4:8] == ["5", "5", "0.2", "42"]
    metrics = version_run(two_versions, "m", "1").data.metrics
    assert v1[8:] == [f"{metrics[key]:.4f}" for key in ("accuracy", "f1_macro", "log_loss")]
    assert lines[5] == "  production before: 1 (make rollback ALIAS=production)"


def test_promote_and_rollback_are_plain_functions(two_versions: MlflowClient) -> None:
    registry = open_registry()
    promoted = lifecycle.promote(registry, "m", 2)
    assert (promoted.previous, promoted.version, promoted.changed) == ("1", "2", True)
    assert promoted.comparison is not None
    assert promoted.comparison.verdict == "equal"
    rolled = lifecycle.rollback(registry, "m")
    assert (rolled.previous, rolled.version) == ("2", "1")


def test_the_lifecycle_commands_do_not_import_mlflow(
    two_versions: MlflowClient, tracking_uri: str
) -> None:
    """Importing MLflow took most of the lifecycle commands' 7 to 28 seconds."""
    script = textwrap.dedent(
        """
        import sys
        from training.lifecycle import main
        codes = [
            main(["models", "--model=m"]),
            main(["promote", "--model=m", "--version=9"]),
            main(["promote", "--model=m", "--version=2"]),
            main(["rollback", "--model=m"]),
        ]
        heavy = ("sklearn", "skl2onnx", "mlflow", "pandas", "onnx", "sqlalchemy")
        print(codes, sorted(name for name in heavy if name in sys.modules), file=sys.stderr)
        """
    )
    env = {"MLFLOW_TRACKING_URI": tracking_uri, "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    assert result.stderr.splitlines()[-1] == "[0, 2, 0, 0] []"


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        lifecycle.main(["promote", "--help"])
    assert caught.value.code == 0
    assert "--force" in capsys.readouterr().out


def test_the_model_listing_never_shows_the_tracking_uris_password() -> None:
    from training.lifecycle_report import format_versions
    from training.registry import RegisteredModel

    model = RegisteredModel(name="iris-classifier", aliases={}, tags={})
    text = format_versions(model, "https://admin:s3cret@mlflow.example.com/", [], {})
    assert "s3cret" not in text
    assert "mlflow.example.com" in text
