"""The data plane: which model answers, what scoring counts, drift and the shadow."""

import asyncio
import math
from pathlib import Path

import numpy as np
import pytest

from server.dataplane import CHALLENGER, CHAMPION, DataPlane
from server.errors import ModelNotReady, NotFound
from server.metrics import Metrics
from server.model import Model, Origin, load_model
from server.registry import read_model_dir
from server.settings import Settings
from tests.samples import SETOSA

ROWS = np.asarray([list(SETOSA.values())] * 20, dtype=np.float32)


def load(path: Path, version: str) -> Model:
    return load_model(read_model_dir(path), Origin(str(path), "local", version))


def plane_for(settings: Settings) -> tuple[DataPlane, Metrics]:
    metrics = Metrics()
    return DataPlane(settings, metrics, lambda: "loading"), metrics


def exposition(metrics: Metrics) -> str:
    return metrics.exposition()[0].decode()


def test_shadow_counters_exist_at_zero_and_drift_is_unknown() -> None:
    _, metrics = plane_for(
        Settings(challenger_uri="models:/x@challenger", challenger_mode="shadow")
    )
    text = exposition(metrics)
    assert 'model_shadow_agreement_total{outcome="agree"} 0.0' in text
    assert 'model_shadow_agreement_total{outcome="disagree"} 0.0' in text
    assert "model_prediction_drift_psi NaN" in text


def test_nothing_installed_is_not_ready_with_the_reason() -> None:
    plane, _ = plane_for(Settings())
    with pytest.raises(ModelNotReady, match="no model loaded yet: loading"):
        plane.pick(None)
    with pytest.raises(ModelNotReady):
        plane.find("iris-classifier", None)


def test_install_resets_drift_and_counts_under_the_models_version(
    model_dirs: dict[str, Path],
) -> None:
    plane, metrics = plane_for(Settings())
    plane.install(CHAMPION, load(model_dirs["iris"], "1"))
    choice = plane.pick(None)
    assert choice.model.version == "1"
    assert choice.is_champion
    plane.score(choice, ROWS)
    plane.update_drift_metrics()
    assert 'model_feature_drift_psi{feature="petal width (cm)"}' in exposition(metrics)
    assert not math.isnan(metrics.prediction_drift._value.get())

    plane.install(CHAMPION, load(model_dirs["iris"], "2"))
    text = exposition(metrics)
    assert "model_feature_drift_psi{" not in text  # the old model's drift is gone
    assert "model_prediction_drift_psi NaN" in text
    assert (
        'predictions_total{model_version="1",predicted_class="setosa",variant="champion"} 20.0'
        in text
    )
    assert choice.model.version == "1"  # a request that picked the old model keeps it
    assert plane.pick(None).model.version == "2"
    plane.install(CHAMPION, None)
    with pytest.raises(ModelNotReady):
        plane.pick(None)


def test_a_batch_scored_after_a_swap_stays_out_of_the_new_models_drift(
    model_dirs: dict[str, Path],
) -> None:
    """Coalesced scoring waits a loop turn; a swap in that turn must not mix the two models."""
    plane, _ = plane_for(Settings())
    plane.install(CHAMPION, load(model_dirs["iris"], "1"))
    choice = plane.pick(None)

    async def pick_then_swap() -> None:
        waiting = plane.coalescer.score(choice, ROWS[:3])
        plane.install(CHAMPION, load(model_dirs["wine"], "2"))
        result = await waiting  # wine has 13 features: recording these 4 would fail
        assert result.class_indices is not None
        assert len(result.class_indices) == 3

    asyncio.run(pick_then_swap())
    assert plane.drift is not None
    assert plane.drift.report()["rows_in_window"] == 0


def test_find_addresses_models_by_name_and_version(model_dirs: dict[str, Path]) -> None:
    plane, _ = plane_for(
        Settings(challenger_uri="models:/iris-classifier@challenger", challenger_mode="shadow")
    )
    plane.install(CHAMPION, load(model_dirs["iris"], "1"))
    plane.install(CHALLENGER, load(model_dirs["iris"], "2"))
    assert plane.find("iris-classifier", None).model.version == "1"
    found = plane.find("iris-classifier", "2")
    assert found.model.version == "2"
    assert not found.is_champion
    assert plane.versions("iris-classifier") == ["1", "2"]
    with pytest.raises(NotFound, match="version '3' is not loaded; serving"):
        plane.find("iris-classifier", "3")
    with pytest.raises(NotFound, match=r"is not served here; serving \['iris-classifier'\]"):
        plane.find("wine-classifier", None)


def test_split_sends_a_share_to_the_challenger_stably(model_dirs: dict[str, Path]) -> None:
    plane, _ = plane_for(
        Settings(
            challenger_uri="models:/iris-classifier@challenger",
            challenger_mode="split",
            challenger_traffic=0.3,
        )
    )
    plane.install(CHAMPION, load(model_dirs["iris"], "1"))
    assert plane.pick("a").model.version == "1"  # no challenger yet: the champion answers
    plane.install(CHALLENGER, load(model_dirs["iris"], "2"))
    picks = [plane.pick(f"key-{i}").model.version for i in range(2000)]
    assert 0.25 < picks.count("2") / len(picks) < 0.35
    assert all(plane.pick(f"key-{i}").model.version == picks[i] for i in range(200))


def test_shadow_scores_the_challenger_after_the_answer(model_dirs: dict[str, Path]) -> None:
    plane, metrics = plane_for(
        Settings(challenger_uri="models:/iris-classifier@challenger", challenger_mode="shadow")
    )
    plane.install(CHAMPION, load(model_dirs["iris"], "1"))
    plane.install(CHALLENGER, load(model_dirs["iris"], "2"))

    async def score_then_yield() -> None:
        result = plane.score(plane.pick(None), ROWS)
        assert result.class_indices is not None
        assert 'agree"} 20.0' not in exposition(metrics)  # not yet: after the response
        await asyncio.sleep(0)

    asyncio.run(score_then_yield())
    assert 'model_shadow_agreement_total{outcome="agree"} 20.0' in exposition(metrics)
