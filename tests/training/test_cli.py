"""The training command end to end, in-process, against a local SQLite store."""

import json
import re
import socket
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from tests.processes import REPO_ROOT
from tests.registry import snapshot, version_run
from tests.training.conftest import Result, Train
from training.errors import TrainingError


def _one_line_error(result: Result, code: int = 2) -> str:
    assert result.code == code
    assert result.err.startswith("error: ")
    assert result.err.count("\n") == 1, result.err
    assert "Traceback" not in result.err
    return result.err.strip()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # closed again on leaving the block: nothing listens there


STAGES = [
    r"  loading the iris dataset \.\.\. \d+\.\ds",
    r"  fitting a random forest \(5 trees, max depth 5\) \.\.\. \d+\.\ds: 120 training rows",
    r"  evaluating on 30 held-out rows \.\.\. \d+\.\ds: "
    r"accuracy 0\.\d{4}, f1_macro 0\.\d{4}, log_loss \d\.\d{4}",
    r"  exporting to ONNX \.\.\. \d+\.\ds",
    r"  checking ONNX against scikit-learn on 30 rows \.\.\. \d+\.\ds: all agree, largest gap \S+",
    r"  logging the run to MLflow \.\.\. \d+\.\ds",
]


def test_trains_and_registers_iris(train: Train, client: MlflowClient, tracking_uri: str) -> None:
    result = train()
    assert result.code == 0, result.err
    assert result.err == ""
    lines = result.out.splitlines()
    assert lines[0] == (
        f"training iris-classifier on the iris dataset; registering it in {tracking_uri}"
    )
    for line, stage in zip(lines[1:7], STAGES, strict=True):
        assert re.fullmatch(stage, line), line
    assert re.fullmatch(
        r"  registering iris-classifier \.\.\. \d+\.\ds: version 1 with alias production", lines[7]
    )
    assert re.fullmatch(
        r"registered iris-classifier version 1 with alias production \(run \w+\) in \d+\.\ds",
        lines[8],
    )
    assert lines[9] == (
        "version 1 is the first of iris-classifier, so production serves it: "
        "`make serve` to serve it here"
    )
    assert len(lines) == 10
    assert snapshot(client, "iris-classifier").aliases == {"production": "1"}


def test_a_later_version_says_how_to_promote_it(train: Train, client: MlflowClient) -> None:
    assert train("--dataset=wine").code == 0
    result = train("--dataset=wine", "--random-state=3")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    at = lines.index(
        "production still serves version 1; "
        "`make promote MODEL=wine-classifier VERSION=2` to serve this one"
    )
    accuracy = [version_run(client, "wine-classifier", v).data.metrics["accuracy"] for v in "12"]
    assert lines[at + 1] == (
        f"  accuracy: {accuracy[0]:.4f} in production, {accuracy[1]:.4f} for this version"
    )
    worse = ["  it is worse on accuracy, so promotion refuses it unless FORCE=1"]
    assert lines[at + 2 :] == (worse if accuracy[1] < accuracy[0] else [])


def test_each_stage_is_named_before_it_runs(
    train: Train, client: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from training import onnx_export

    def fail(*args: Any, **kwargs: Any) -> None:
        raise TrainingError("the exporter gave up")

    monkeypatch.setattr(onnx_export, "export", fail)
    result = train()
    assert result.out.splitlines()[-1] == "  exporting to ONNX ... failed"
    assert _one_line_error(result) == "error: the exporter gave up"
    assert snapshot(client, "iris-classifier").exists is False


@pytest.mark.parametrize(
    ("dataset", "name", "task", "metrics"),
    [
        ("wine", "wine-classifier", "classification", {"accuracy", "f1_macro", "log_loss"}),
        ("diabetes", "diabetes-regressor", "regression", {"rmse", "mae", "r2"}),
    ],
)
def test_each_dataset_registers_its_own_model(
    train: Train, client: MlflowClient, dataset: str, name: str, task: str, metrics: set[str]
) -> None:
    assert train(f"--dataset={dataset}").code == 0
    assert snapshot(client, name).aliases == {"production": "1"}
    assert client.get_registered_model(name).tags["task"] == task
    run = version_run(client, name, "1")
    assert set(run.data.metrics) == metrics
    assert run.data.params["dataset"] == dataset
    assert snapshot(client, "iris-classifier").exists is False


def test_same_seed_twice_gives_the_same_metrics(train: Train, client: MlflowClient) -> None:
    assert train("--random-state=11").code == 0
    assert train("--random-state=11").code == 0
    assert train("--random-state=12", "--dataset=iris").code == 0
    runs = [version_run(client, "iris-classifier", v).data.metrics for v in ("1", "2", "3")]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset=mnist"], "error: unknown dataset 'mnist': choose one of iris, wine, diabetes"),
        (["--n-estimators=0"], "error: --n-estimators must be at least 1, got 0"),
        (["--n-estimators=-5"], "error: --n-estimators must be at least 1, got -5"),
        (["--test-size=0"], "error: --test-size must be between 0 and 1, got 0.0"),
        (["--test-size=1"], "error: --test-size must be between 0 and 1, got 1.0"),
        (["--test-size=1.5"], "error: --test-size must be between 0 and 1, got 1.5"),
        (["--max-depth=0"], "error: --max-depth must be at least 1, got 0"),
    ],
)
def test_bad_input_changes_nothing(
    train: Train, client: MlflowClient, args: list[str], message: str
) -> None:
    assert train("--model-name=kept").code == 0
    before = snapshot(client, "kept")
    assert _one_line_error(train("--model-name=kept", *args)) == message
    assert snapshot(client, "kept") == before


def test_unreachable_tracking_server(train: Train, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    message = _one_line_error(train())
    assert message.startswith(f"error: cannot reach the MLflow tracking server at {url}: ")
    assert "refused" in message


def test_other_features_under_an_existing_name(train: Train, client: MlflowClient) -> None:
    assert train("--model-name=X").code == 0
    before = snapshot(client, "X")
    message = _one_line_error(train("--model-name=X", "--dataset=wine"))
    assert message.startswith("error: registered model 'X' expects features ['sepal length (cm)', ")
    assert message.endswith("but this dataset has ['alcohol', " + message.split("['alcohol', ")[1])
    assert message.endswith("; choose another --model-name")
    assert snapshot(client, "X") == before
    assert json.loads(client.get_registered_model("X").tags["features"])[0] == "sepal length (cm)"


def test_an_mlflow_failure_is_one_line(
    train: Train, client: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: Any, **kwargs: Any) -> None:
        raise MlflowException("the store said no\nand then some details\non more lines")

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", fail)
    message = _one_line_error(train(), code=1)
    assert message == "error: MLflow: the store said no and then some details on more lines"
    assert snapshot(client, "iris-classifier").exists is False


def test_help_exits_cleanly(capsys: pytest.CaptureFixture[str]) -> None:
    from training.cli import main

    with pytest.raises(SystemExit) as caught:
        main(["--help"])
    assert caught.value.code == 0
    assert "--n-estimators" in capsys.readouterr().out


def test_a_bad_option_is_refused_before_the_heavy_imports() -> None:
    """scikit-learn, skl2onnx and MLflow take seconds to import; a typo should not wait for them."""
    script = textwrap.dedent(
        """
        import sys
        from training.cli import main
        status = main(["--n-estimators", "0"])
        heavy = ("sklearn", "skl2onnx", "mlflow", "pandas", "onnx")
        print(status, sorted(name for name in heavy if name in sys.modules))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "2 []"
    assert result.stderr.strip() == "error: --n-estimators must be at least 1, got 0"
