import asyncio
import logging
import math
from pathlib import Path

import numpy as np
import pytest

from server.errors import ModelNotReady
from server.metrics import Metrics
from server.model import Model, Origin, load_model
from server.model_manager import Serving
from server.registry import read_model_dir, registry_for
from server.settings import Settings
from tests.conftest import TrainedStore
from tests.processes import free_port


def load(path: Path, version: str) -> Model:
    return load_model(read_model_dir(path), Origin(str(path), "local", version))


def serving_for(settings: Settings) -> tuple[Serving, Metrics]:
    metrics = Metrics()
    return Serving(settings, lambda: registry_for(None, 1), metrics), metrics


def exposition(metrics: Metrics) -> str:
    return metrics.exposition()[0].decode()


def test_counters_exist_at_zero_before_anything_happens() -> None:
    _, metrics = serving_for(
        Settings(challenger_uri="models:/x@challenger", challenger_mode="shadow")
    )
    text = exposition(metrics)
    assert 'model_reload_failures_total{variant="champion"} 0.0' in text
    assert 'model_reload_failures_total{variant="challenger"} 0.0' in text
    assert 'model_shadow_agreement_total{outcome="agree"} 0.0' in text
    assert 'model_shadow_agreement_total{outcome="disagree"} 0.0' in text
    assert "model_ready 0.0" in text
    assert "model_prediction_drift_psi NaN" in text


def test_a_swap_resets_drift_and_publishes_the_new_model(trained_store: TrainedStore) -> None:
    serving, metrics = serving_for(Settings(drift_min_rows=10))
    with pytest.raises(ModelNotReady):
        serving.pick()
    path = trained_store.exported["iris-classifier"]
    serving.champion.swap(load(path, "1"))
    choice = serving.pick()
    assert choice.model.version == "1"
    assert choice.is_champion
    rows = np.asarray([[5.1, 3.5, 1.4, 0.2]] * 20, dtype=np.float32)
    serving.score(choice, rows)
    serving.update_drift_metrics()
    assert 'model_feature_drift_psi{feature="petal width (cm)"}' in exposition(metrics)
    assert not math.isnan(metrics.prediction_drift._value.get())

    serving.champion.swap(load(path, "2"))
    text = exposition(metrics)
    assert "model_feature_drift_psi{" not in text  # the old model's drift is gone
    assert "model_prediction_drift_psi NaN" in text
    assert (
        'model_info{name="iris-classifier",source="local",variant="champion",version="2"} 1.0'
        in text
    )
    assert 'version="1"} 1.0' not in text.split("# HELP model_info")[1].split("# HELP")[0]
    assert (
        'predictions_total{model_version="1",predicted_class="setosa",variant="champion"} 20.0'
        in text
    )
    assert choice.model.version == "1"  # a request that picked the old model keeps it
    assert serving.pick().model.version == "2"


def test_an_unexpected_error_does_not_stop_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    serving, _ = serving_for(Settings(retry_seconds=0.01))
    calls = []

    async def broken() -> None:
        calls.append(1)
        raise TypeError("a bug")

    monkeypatch.setattr(serving.champion, "_sync_with_registry", broken)

    async def run_briefly() -> None:
        task = asyncio.create_task(serving.champion.run())
        await asyncio.sleep(0.2)
        assert not task.done()  # still polling after the errors
        task.cancel()

    asyncio.run(run_briefly())
    assert len(calls) > 3


def test_a_batch_scored_after_a_swap_stays_out_of_the_new_models_drift(
    trained_store: TrainedStore,
) -> None:
    """Coalesced scoring waits a loop turn; a swap in that turn must not mix the two models."""
    serving, _ = serving_for(Settings())
    serving.champion.swap(load(trained_store.exported["iris-classifier"], "1"))
    choice = serving.pick()
    rows = np.asarray([[5.1, 3.5, 1.4, 0.2]] * 3, dtype=np.float32)

    async def pick_then_swap() -> None:
        waiting = serving.coalescer.score(choice, rows)
        serving.champion.swap(load(trained_store.exported["wine-classifier"], "2"))
        result = await waiting  # wine has 13 features: recording these 4 would fail
        assert result.class_indices is not None
        assert len(result.class_indices) == 3

    asyncio.run(pick_then_swap())
    assert serving.drift is not None
    assert serving.drift.report()["rows_in_window"] == 0


@pytest.mark.parametrize(
    ("uri", "tracking", "reason"),
    [
        ("/srv/secret-path/model", None, "the model could not be loaded"),
        (
            "models:/m@production",
            f"http://admin:pa55@127.0.0.1:{free_port()}",
            "the model registry is unavailable",
        ),
    ],
)
def test_the_public_reason_names_no_host_path_or_credential(
    uri: str, tracking: str | None, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(model_uri=uri, tracking_uri=tracking, registry_timeout_seconds=0.5)
    metrics = Metrics()
    serving = Serving(settings, lambda: registry_for(tracking, 0.5), metrics)

    async def one_attempt() -> None:
        task = asyncio.create_task(serving.champion.run())
        while serving.champion.status == "loading":
            await asyncio.sleep(0.01)
        task.cancel()

    with caplog.at_level(logging.ERROR, logger="server.models"):
        asyncio.run(one_attempt())
    assert serving.champion.status == reason
    with pytest.raises(ModelNotReady) as caught:
        serving.pick()
    for secret in ("secret-path", "127.0.0.1", "pa55", "admin"):
        assert secret not in str(caught.value)
    detail = " ".join(getattr(record, "error", "") for record in caplog.records)
    assert "pa55" not in detail
    assert ("secret-path" in detail) or ("127.0.0.1" in detail)  # the log has the detail


def test_the_split_draws_for_every_request(trained_store: TrainedStore) -> None:
    settings = Settings(
        challenger_uri="models:/x@challenger", challenger_mode="split", challenger_traffic=0.25
    )
    serving, _ = serving_for(settings)
    path = trained_store.exported["iris-classifier"]
    serving.champion.swap(load(path, "1"))
    assert serving.challenger is not None
    serving.challenger.swap(load(path, "2"))
    picks = [serving.pick().model.version for _ in range(4000)]
    assert 0.22 < picks.count("2") / len(picks) < 0.28


def test_no_drift_figure_is_exported_until_the_window_has_enough_rows(
    trained_store: TrainedStore,
) -> None:
    settings = Settings(drift_min_rows=50, drift_warning_psi=0.12, drift_threshold_psi=0.3)
    serving, metrics = serving_for(settings)
    text = exposition(metrics)
    assert 'model_drift_threshold_psi{level="warning"} 0.12' in text
    assert 'model_drift_threshold_psi{level="drift"} 0.3' in text
    serving.champion.swap(load(trained_store.exported["iris-classifier"], "1"))
    choice = serving.pick()
    serving.score(choice, np.asarray([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32))
    report = serving.update_drift_metrics()
    assert report is not None
    assert report["status"] == "insufficient data"
    text = exposition(metrics)
    assert "model_feature_drift_psi{" not in text
    assert "model_prediction_drift_psi NaN" in text
    for _ in range(60):
        serving.score(choice, np.asarray([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32))
    serving.update_drift_metrics()
    assert 'model_feature_drift_psi{feature="petal width (cm)"}' in exposition(metrics)
