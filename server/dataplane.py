"""The data plane: which model answers a request, scoring, prediction counts, drift and shadow.

No HTTP and no model loading here. The lifecycle (`server.lifecycle`) hands each new model to
`install`; a request reads one `Choice` and keeps it, so a swap never disturbs requests in flight.
Everything here runs on the event loop's thread.
"""

import asyncio
import logging
import random
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from prometheus_client import Counter, Histogram

from server.coalescing import Coalescer, Keys
from server.drift import INSUFFICIENT, DriftMonitor
from server.errors import ModelNotReady, NotFound
from server.event_loop import running_loop
from server.metrics import Metrics
from server.model import Model, Predictions
from server.recording import Recorder
from server.settings import Settings

log = logging.getLogger("server.models")
REGRESSION_CLASS_LABEL = "value"
CHAMPION, CHALLENGER = "champion", "challenger"


class BoundMetrics(NamedTuple):
    """Metric children bound to one model and variant, so the request path does no lookups."""

    inference: Histogram
    class_counters: list[Counter]

    @classmethod
    def bind(cls, metrics: Metrics, model: Model, variant: str) -> "BoundMetrics":
        labels = model.classes if model.is_classifier else [REGRESSION_CLASS_LABEL]
        return cls(
            inference=metrics.inference.labels(variant),
            class_counters=[metrics.predictions.labels(c, model.version, variant) for c in labels],
        )


class Choice(NamedTuple):
    """The model that answers one request, its metrics, and whether it is the champion."""

    model: Model
    metrics: BoundMetrics
    is_champion: bool


class DataPlane:
    """The served models as requests see them, and what happens when one is scored."""

    def __init__(
        self, settings: Settings, metrics: Metrics, not_ready_reason: Callable[[], str]
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.not_ready_reason = not_ready_reason
        self.champion: Choice | None = None
        self.challenger: Choice | None = None
        self.drift: DriftMonitor | None = None
        has_challenger = bool(settings.challenger_uri) and settings.challenger_mode != "off"
        self.split = (
            has_challenger
            and settings.challenger_mode == "split"
            and settings.challenger_traffic > 0
        )
        self.shadow = has_challenger and settings.challenger_mode == "shadow"
        self._threshold = int(settings.challenger_traffic * 0xFFFFFFFF)
        # Set by the app when predictions are recorded (server.recording).
        self.recorder: Recorder | None = None
        # The request path scores through this: requests that are ready together share a call.
        self.coalescer: Coalescer[Choice] = Coalescer(self.score, settings.max_batch)
        # Counters exist at zero from the start: rate() and increase() cannot see a series'
        # first sample, so one created by its first increment would hide that increment.
        if self.shadow:
            metrics.shadow_agreement.labels("agree")
            metrics.shadow_agreement.labels("disagree")
            metrics.shadow_failures.inc(0)
        # The alert rules compare the PSI with these, so the server and the alerts agree.
        metrics.drift_threshold.labels("warning").set(settings.drift_warning_psi)
        metrics.drift_threshold.labels("drift").set(settings.drift_threshold_psi)
        self._forget_drift()

    def install(self, variant: str, model: Model | None) -> None:
        """Serve `model` as `variant` from now on (None: serve nothing); the lifecycle calls this."""
        choice = (
            None
            if model is None
            else Choice(model, BoundMetrics.bind(self.metrics, model, variant), variant == CHAMPION)
        )
        if variant == CHALLENGER:
            self.challenger = choice
            return
        self.champion = choice
        self._forget_drift()  # the old model's drift says nothing about the new one
        self.drift = (
            None
            if model is None
            else DriftMonitor.for_model(
                model.drift_reference,
                model.features,
                self.settings.drift_window,
                model.version,
                min_rows=self.settings.drift_min_rows,
                rows_per_request=self.settings.drift_rows_per_request,
                warning_psi=self.settings.drift_warning_psi,
                threshold_psi=self.settings.drift_threshold_psi,
            )
        )

    def _forget_drift(self) -> None:
        """No drift figures until the current model has seen traffic (NaN is "unknown", not 0)."""
        self.metrics.feature_drift.clear()
        self.metrics.prediction_drift.set(float("nan"))

    @property
    def champion_model(self) -> Model:
        """The champion's model, or ModelNotReady saying why there is none."""
        choice = self.champion
        if choice is None:
            raise ModelNotReady(f"no model loaded yet: {self.not_ready_reason()}")
        return choice.model

    def pick(self) -> Choice:
        """The model for this request: the challenger for its share of requests, else the champion.

        The server draws for every request: a split keyed on anything the client sends (its
        X-Request-ID, say) would let the client choose its variant.
        """
        choice = self.champion
        if choice is None:
            raise ModelNotReady(f"no model loaded yet: {self.not_ready_reason()}")
        if self.split and self.challenger is not None and random.getrandbits(32) < self._threshold:
            return self.challenger
        return choice

    def find(self, name: str, version: str | None) -> Choice:
        """The served model with this name (and version, when given): the OIP's addressing."""
        loaded = [c for c in (self.champion, self.challenger) if c is not None]
        if not loaded:
            raise ModelNotReady(f"no model loaded yet: {self.not_ready_reason()}")
        named = [c for c in loaded if c.model.name == name]
        if not named:
            served = sorted({c.model.name for c in loaded})
            raise NotFound(f"model {name[:200]!r} is not served here; serving {served}")
        if version is None:
            return named[0]
        for choice in named:
            if choice.model.version == version:
                return choice
        versions = [c.model.version for c in named]
        raise NotFound(
            f"model {name[:200]!r} version {version[:50]!r} is not loaded; serving {versions}"
        )

    def versions(self, name: str) -> list[str]:
        """The versions of `name` being served, each once."""
        loaded = [c for c in (self.champion, self.challenger) if c is not None]
        return list(dict.fromkeys(c.model.version for c in loaded if c.model.name == name))

    def score(self, choice: Choice, rows: np.ndarray, keys: Keys = ()) -> Predictions:
        """Predict, count, and feed drift detection, the shadow and the recorder.

        `keys` are the request ids and row counts of the requests in `rows`, for the recorder.
        """
        result = choice.model.predict(rows)
        bound = choice.metrics
        bound.inference.observe(result.seconds)
        counters = bound.class_counters
        answers = result.class_indices
        if answers is not None:
            if len(answers) == 1:
                counters[int(answers[0])].inc()
            else:
                for index, count in enumerate(np.bincount(answers, minlength=len(counters))):
                    if count:
                        counters[index].inc(int(count))
        else:
            answers = result.values
            assert answers is not None
            counters[0].inc(len(answers))
        # Only while the model is still the champion: a swap can land between a request's pick
        # and its scoring, and the new model's drift window and shadow compare are not for it.
        champion = self.champion
        if choice.is_champion and champion is not None and choice.model is champion.model:
            if self.drift is not None:
                self.drift.record(rows, answers)
            if self.shadow:  # the shadow records the champion's answers with its own
                running_loop().call_soon(self.shadow_score, rows, answers, keys, choice.model)
                return result
        if self.recorder is not None and keys:
            variant = CHAMPION if choice.is_champion else CHALLENGER
            self.recorder.record(choice.model, variant, rows, answers, keys)
        return result

    def shadow_score(
        self,
        rows: np.ndarray,
        champion_answer: np.ndarray,
        keys: Keys = (),
        champion: Model | None = None,
    ) -> None:
        """Score the challenger on the same rows and record both; called off the response path."""
        challenger, answer = self._shadow_answer(rows, champion_answer)
        if self.recorder is not None and keys and champion is not None:
            self.recorder.record(
                champion, CHAMPION, rows, champion_answer, keys, challenger, answer
            )

    def _shadow_answer(
        self, rows: np.ndarray, champion_answer: np.ndarray
    ) -> tuple[Model | None, np.ndarray | None]:
        choice = self.challenger
        if choice is None:
            return None, None
        try:
            result = choice.model.predict(rows)
        except Exception:  # the shadow must never affect serving
            self.metrics.shadow_failures.inc()
            log.exception("shadow scoring failed", extra={"version": choice.model.version})
            return None, None
        choice.metrics.inference.observe(result.seconds)
        answer = result.answers
        if choice.model.is_classifier:
            agree = int(np.count_nonzero(answer == champion_answer))
        else:
            agree = int(np.count_nonzero(np.isclose(answer, champion_answer, rtol=0.05)))
        if agree:
            self.metrics.shadow_agreement.labels("agree").inc(agree)
        if len(rows) - agree:
            self.metrics.shadow_agreement.labels("disagree").inc(len(rows) - agree)
        return choice.model, answer

    async def run(self) -> None:
        """Recompute the drift figures every DRIFT_INTERVAL_SECONDS, off the request path."""
        while True:
            await asyncio.sleep(self.settings.drift_interval_seconds)
            try:
                self.update_drift_metrics()
            except Exception:  # drift reporting must never take serving down with it
                log.exception("drift computation failed")

    def update_drift_metrics(self) -> dict[str, object] | None:
        monitor = self.drift
        if monitor is None:
            return None
        report = monitor.report()
        if report["status"] in (INSUFFICIENT, "no data"):
            self._forget_drift()  # too few rows: no figure, so no alert can fire on noise
            return report
        for name, entry in report["features"].items():
            self.metrics.feature_drift.labels(name).set(entry["psi"])
        if report["prediction"]["psi"] is not None:
            self.metrics.prediction_drift.set(report["prediction"]["psi"])
        return report
