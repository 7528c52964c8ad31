"""`make retrain` and `make judge` against a local MLflow store and a SQLite prediction store
filled with labelled predictions, the way the servers record them."""

import json
import time
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from server.store import PredictionRow, PredictionStore
from tests.training.conftest import Train
from training import judge, retrain
from training.errors import TrainingError
from training.server_metrics import ServingFigures, add_exposition

CLASSES = ["setosa", "versicolor", "virginica"]
# Three iris rows, one per class, as the recorder stores features (float64 bytes).
ROWS = {
    "setosa": [5.1, 3.5, 1.4, 0.2],
    "versicolor": [6.0, 2.9, 4.5, 1.5],
    "virginica": [7.7, 3.0, 6.1, 2.3],
}


def record(
    store: PredictionStore,
    n: int,
    *,
    champion: str = "1",
    challenger: str | None = None,
    champion_right: float = 1.0,
    challenger_right: float = 1.0,
    seed: int = 0,
    prefix: str = "r",
    start: float | None = None,
) -> None:
    """n labelled predictions; each side right with the given probability."""
    rng = np.random.default_rng(seed)
    rows: list[PredictionRow] = []
    feedback = []
    now = time.time()
    first = now - n if start is None else start
    for i in range(n):
        truth = CLASSES[i % 3]
        wrong = CLASSES[(i + 1) % 3]
        ours = truth if rng.random() < champion_right else wrong
        theirs = truth if rng.random() < challenger_right else wrong
        features = np.asarray(ROWS[truth], dtype=np.float64).tobytes()
        rows.append(
            (f"{prefix}{i}", 0, first + i / 1000, "iris-classifier", champion, "champion", features,
             ours, None, challenger, theirs if challenger else None, None)
        )  # fmt: skip
        feedback.append((f"{prefix}{i}", 0, truth, None, now))
    connection = store.connect()
    store.write_predictions(connection, rows)
    store.write_feedback(connection, feedback)
    connection.close()


@pytest.fixture
def store(tmp_path: Path) -> PredictionStore:
    return PredictionStore(f"sqlite:///{tmp_path / 'predictions.db'}")


@pytest.fixture
def registered(train: Train) -> None:
    assert train().code == 0  # iris-classifier version 1, production


# What a healthy API replica's /metrics says about prediction requests and both variants.
HEALTHY_METRICS = "\n".join(
    [
        'http_requests_total{method="POST",route="/predict",status="200"} 1000',
        *(
            f'model_inference_seconds_bucket{{variant="{v}",le="{le}"}} {c}'
            for v in ("champion", "challenger")
            for le, c in (("2.5e-05", 50), ("5e-05", 990), ("+Inf", 1000))
        ),
        "model_shadow_failures_total 0",
        "",
    ]
)


def healthy_figures() -> ServingFigures:
    figures = ServingFigures()
    add_exposition(figures, HEALTHY_METRICS)
    return figures


def test_retrain_refuses_with_too_few_labels_in_one_line(
    registered: None, store: PredictionStore, capsys: pytest.CaptureFixture[str]
) -> None:
    record(store, 57)
    assert retrain.main(["--store-uri", store.uri]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "error: 57 labelled predictions of iris-classifier" in err
    assert "needs at least 200" in err


def test_retrain_registers_a_challenger_with_its_provenance(
    registered: None, store: PredictionStore, client: MlflowClient
) -> None:
    record(store, 300)
    message = retrain.run(retrain.parse_options(["--store-uri", store.uri, "--n-estimators", "5"]))
    assert message == "challenger of iris-classifier: nothing -> version 2"
    version = client.get_model_version("iris-classifier", "2")
    params = client.get_run(str(version.run_id)).data.params
    assert params["data_source"] == "production"
    assert params["labelled_rows"] == "300"
    assert params["heldout_rows"] == "60"
    assert params["original_rows"] == "0"
    assert params["label_coverage"] == "1.0000"
    assert params["prediction_store"] == store.uri
    assert client.get_registered_model("iris-classifier").aliases["production"] == 1


def test_the_original_share_rule() -> None:
    assert retrain.original_rows(120, 300, 0.0) == 0
    assert retrain.original_rows(120, 300, 0.25) == 100  # 100 / (300 + 100) = 0.25
    assert retrain.original_rows(120, 300, 0.5) == 120  # all there is


def test_compare_uses_mcnemar_on_the_discordant_pairs() -> None:
    from server.store import PairedRow

    rows = [PairedRow("a", "a", "a")] * 80 + [PairedRow("b", "a", "a")] * 15
    rows += [PairedRow("a", "b", "a")] * 5
    comparison = judge.compare(rows)
    assert comparison.n == 100
    assert comparison.champion.value == pytest.approx(0.85)
    assert comparison.challenger.value == pytest.approx(0.95)
    # P(X >= 15 | X ~ Binomial(20, 0.5)) = 0.0207
    assert comparison.p_value == pytest.approx(0.0207, abs=1e-4)
    assert comparison.better(0.05)
    assert not comparison.better(0.01)


def register_challenger(train: Train, client: MlflowClient) -> None:
    assert train("--random-state=7").code == 0  # version 2
    client.set_registered_model_alias("iris-classifier", "challenger", "2")


def options(store: PredictionStore, **overrides: object) -> judge.JudgeOptions:
    values: dict[str, object] = {"store_uri": store.uri, "min_labels": 100, **overrides}
    return judge.JudgeOptions(**values)  # type: ignore[arg-type]


def test_judge_says_why_it_does_not_promote(
    registered: None, train: Train, store: PredictionStore, client: MlflowClient
) -> None:
    register_challenger(train, client)
    record(store, 300, challenger="2", champion_right=0.95, challenger_right=0.94, seed=1)
    decision = judge.Judge(options(store), client, healthy_figures).run()
    assert decision.action == "unchanged"
    assert "version 2 against production version 1: challenger 0.9" in decision.message
    assert "on 300 labels vs champion 0.9" in decision.message
    assert "not better (McNemar exact test, one-sided p = " in decision.message
    assert client.get_registered_model("iris-classifier").aliases["production"] == 1
    tags = client.get_model_version("iris-classifier", "2").tags
    assert "not better" in tags[judge.DECISION_TAG]


def test_judge_waits_for_enough_labels(
    registered: None, train: Train, store: PredictionStore, client: MlflowClient
) -> None:
    register_challenger(train, client)
    record(store, 40, challenger="2", champion_right=0.3, challenger_right=1.0)
    decision = judge.Judge(options(store), client, healthy_figures).run()
    assert decision.action == "unchanged"
    assert "40 paired labels; the test needs at least 100" in decision.message


def test_promotion_then_automatic_rollback(
    registered: None, train: Train, store: PredictionStore, client: MlflowClient
) -> None:
    register_challenger(train, client)
    record(store, 300, challenger="2", champion_right=0.6, challenger_right=0.97, seed=2)
    decision = judge.Judge(options(store), client, healthy_figures).run()
    assert decision.action == "promoted", decision.message
    model = client.get_registered_model("iris-classifier")
    assert model.aliases["production"] == 2
    assert model.aliases["challenger"] == 1  # the predecessor shadows during the watch
    watch = json.loads(model.tags[judge.WATCH_TAG])
    assert (watch["version"], watch["previous"]) == ("2", "1")
    assert (
        "better (McNemar"
        in client.get_model_version("iris-classifier", "2").tags[judge.PROMOTION_TAG]
    )

    # The new champion turns out worse than its predecessor, shadowing it, on new traffic.
    record(store, 120, champion="2", challenger="1", champion_right=0.4, challenger_right=0.95,
           seed=3, prefix="after", start=time.time())  # fmt: skip
    decision = judge.Judge(options(store), client, healthy_figures).run()
    assert decision.action == "rolled_back", decision.message
    assert "rolled back production of iris-classifier: version 2 -> version 1" in decision.message
    assert "the new champion is worse" in decision.message
    model = client.get_registered_model("iris-classifier")
    assert model.aliases["production"] == 1
    assert judge.WATCH_TAG not in model.tags
    assert "worse" in client.get_model_version("iris-classifier", "2").tags[judge.ROLLBACK_TAG]


def test_force_promotes_against_the_evidence(
    registered: None, train: Train, store: PredictionStore, client: MlflowClient
) -> None:
    register_challenger(train, client)
    record(store, 300, challenger="2", champion_right=0.95, challenger_right=0.5, seed=4)
    decision = judge.Judge(options(store, force=True), client, healthy_figures).run()
    assert decision.action == "promoted"
    assert "FORCE: " in decision.message
    assert client.get_registered_model("iris-classifier").aliases["production"] == 2


def test_a_slow_challenger_is_not_promoted(
    registered: None, train: Train, store: PredictionStore, client: MlflowClient
) -> None:
    register_challenger(train, client)
    record(store, 300, challenger="2", champion_right=0.6, challenger_right=0.97, seed=5)
    figures = healthy_figures()
    slow = "\n".join(
        f'model_inference_seconds_bucket{{variant="challenger",le="{le}"}} {c}'
        for le, c in (("0.001", 0), ("0.005", 900), ("+Inf", 1000))
    )
    figures.inference.pop("challenger")
    add_exposition(figures, slow + "\n")
    decision = judge.Judge(options(store), client, lambda: figures).run()
    assert decision.action == "unchanged"
    assert "p95 inference time" in decision.message


def test_a_bad_store_uri_is_one_line(registered: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert judge.main(["--store-uri", "mysql://nope"]) == 2
    assert "sqlite:///path or postgresql://" in capsys.readouterr().err
    with pytest.raises(TrainingError):
        judge.JudgeOptions(alpha=0.9).validate()
