"""Which model serves: loading, fallback, polling an alias, atomic swaps, champion/challenger.

A request reads `slot.model` once and keeps that object, so a swap never disturbs requests in
flight; loading happens in a worker thread, so no request waits on it.
"""

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from prometheus_client import Counter, Histogram

from server.coalescing import Coalescer
from server.drift import INSUFFICIENT, DriftMonitor
from server.errors import ModelLoadError, ModelNotReady
from server.metrics import Metrics
from server.model import Model, Origin, Predictions, load_model
from server.registry import (
    ModelReference,
    Registry,
    RegistryUnavailable,
    parse_model_uri,
    read_model_dir,
)
from server.settings import Settings

log = logging.getLogger("server.models")
REGRESSION_CLASS_LABEL = "value"
# What /ready and the 503 answers say while no model is loaded: short, and free of host names,
# paths and credentials (the probes answer anyone); the log line has the detail.
REGISTRY_UNAVAILABLE = "the model registry is unavailable"
NOT_LOADED = "the model could not be loaded"


@dataclass(frozen=True)
class BoundMetrics:
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


class ModelSlot:
    """One variant's model and the background task that keeps it current."""

    def __init__(
        self,
        variant: str,
        uri: str,
        settings: Settings,
        registry_factory: Callable[[], Registry],
        metrics: Metrics,
        fallback_path: Path | None = None,
        on_swap: Callable[[Model], None] | None = None,
    ) -> None:
        self.variant = variant
        self.uri = uri
        self.settings = settings
        self.metrics = metrics
        self.fallback_path = fallback_path
        self.on_swap = on_swap
        self.reference: ModelReference = parse_model_uri(uri)
        self._registry_factory = registry_factory
        self._registry: Registry | None = None
        # The model and its bound metrics are published together, as one tuple, so a request
        # that picked a model never counts under another model's labels.
        self.current: tuple[Model, BoundMetrics] | None = None
        self.status = "loading"  # public: see NOT_LOADED
        self._detail = ""
        self._failed_version: str | None = None
        self._registry_down = False

    @property
    def model(self) -> Model | None:
        current = self.current
        return current[0] if current is not None else None

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = self._registry_factory()
        return self._registry

    def swap(self, model: Model) -> None:
        old = self.model
        self.current = (model, BoundMetrics.bind(self.metrics, model, self.variant))
        if old is not None:
            self.metrics.model_info.remove(old.name, old.version, old.origin.source, self.variant)
        self.metrics.model_info.labels(
            model.name, model.version, model.origin.source, self.variant
        ).set(1)
        self.metrics.model_loaded.labels(self.variant).set(model.loaded_at)
        self.status = "ready"
        if self.on_swap is not None:
            self.on_swap(model)
        log.info(
            "model swapped in",
            extra={
                "variant": self.variant,
                "model": model.name,
                "version": model.version,
                "source": model.origin.source,
                "previous_version": old.version if old else None,
            },
        )

    async def run(self) -> None:
        """Load, then keep the model current for as long as the server runs."""
        if self.reference.path is not None:
            await self._load_local()
            return
        while True:
            try:
                await self._sync_with_registry()
            except Exception:  # a bug here must not stop the polling for good
                log.exception("model refresh failed", extra={"variant": self.variant})
            current = self.model
            from_registry = current is not None and current.origin.source == "registry"
            if from_registry and (
                not self.reference.follows_alias or not self.settings.poll_seconds
            ):
                return  # a pinned version never moves; that is how deployments pin a model
            delay = self.settings.poll_seconds if from_registry else self.settings.retry_seconds
            await asyncio.sleep(delay)

    async def _load_local(self) -> None:
        path = self.reference.path
        assert path is not None
        while self.model is None:
            try:
                files = await asyncio.to_thread(read_model_dir, path)
                origin = Origin(self.uri, "local", str(files.metadata.get("version", "local")))
                self.swap(await asyncio.to_thread(load_model, files, origin))
            except ModelLoadError as exc:
                self._not_loaded(f"cannot load {self.uri}: {exc}")
                await asyncio.sleep(self.settings.retry_seconds)

    async def _sync_with_registry(self) -> None:
        reference = self.reference
        try:
            version = await asyncio.to_thread(self.registry.resolve, reference)
            if self._registry_down:
                log.info("registry reachable again", extra={"variant": self.variant})
                self._registry_down = False
            current = self.model
            if (
                current is not None
                and current.origin.source == "registry"
                and current.version == version
            ):
                return
            if version == self._failed_version:
                return  # already refused; wait for the alias to move on
            assert reference.name is not None
            files = await asyncio.to_thread(self.registry.fetch, reference.name, version)
            origin = Origin(self.uri, "registry", version)
            model = await asyncio.to_thread(load_model, files, origin)
        except RegistryUnavailable as exc:
            if not self._registry_down:
                log.warning(
                    "registry unavailable; keeping the current model",
                    extra={"variant": self.variant, "error": str(exc)},
                )
            self._registry_down = True
            await self._fall_back(str(exc), REGISTRY_UNAVAILABLE)
            return
        except (ModelLoadError, KeyError, ValueError) as exc:
            self._refused(str(exc), locals().get("version"))
            await self._fall_back(str(exc))
            return
        self._failed_version = None
        self.swap(model)

    def _refused(self, reason: str, version: object) -> None:
        if isinstance(version, str):
            self._failed_version = version
        if self.model is not None:
            self.metrics.reload_failures.labels(self.variant).inc()
            log.error(
                "model version refused; the current model keeps serving",
                extra={"variant": self.variant, "version": version, "error": reason},
            )
        else:
            self._not_loaded(f"cannot load {self.uri}: {reason}")

    async def _fall_back(self, reason: str, public: str = NOT_LOADED) -> None:
        if self.model is not None:
            return
        if self.fallback_path is None:
            self._not_loaded(f"cannot load {self.uri}: {reason}", public)
            return
        try:
            files = await asyncio.to_thread(read_model_dir, self.fallback_path)
            version = str(files.metadata.get("version", "fallback"))
            origin = Origin(str(self.fallback_path), "fallback", version)
            model = await asyncio.to_thread(load_model, files, origin)
        except ModelLoadError as exc:
            self._not_loaded(f"cannot load {self.uri} ({reason}) nor the fallback: {exc}", public)
            return
        log.warning(
            "serving the fallback model while the registry is unavailable",
            extra={"variant": self.variant, "path": str(self.fallback_path), "error": reason},
        )
        self.swap(model)

    def _not_loaded(self, detail: str, public: str = NOT_LOADED) -> None:
        if self._detail != detail:
            log.error("no model loaded", extra={"variant": self.variant, "error": detail})
        self._detail = detail
        self.status = public


class Choice(NamedTuple):
    """The model that answers one request, its metrics, and whether it is the champion."""

    model: Model
    metrics: BoundMetrics
    is_champion: bool


class Serving:
    """The champion, the optional challenger, and the rule that picks one for a request."""

    def __init__(self, settings: Settings, registry_factory: Callable[[], Registry],
                 metrics: Metrics) -> None:  # fmt: skip
        self.settings = settings
        self.metrics = metrics
        self.drift: DriftMonitor | None = None
        self.champion = ModelSlot(
            "champion",
            settings.model_uri,
            settings,
            registry_factory,
            metrics,
            fallback_path=settings.fallback_path,
            on_swap=self._champion_swapped,
        )
        self.challenger = (
            ModelSlot("challenger", settings.challenger_uri, settings, registry_factory, metrics)
            if settings.challenger_uri and settings.challenger_mode != "off"
            else None
        )
        self.split = settings.challenger_mode == "split" and settings.challenger_traffic > 0
        self.shadow = settings.challenger_mode == "shadow"
        self._threshold = int(settings.challenger_traffic * 0xFFFFFFFF)
        self.draining = False
        # The request path scores through this: requests that are ready together share a call.
        self.coalescer: Coalescer[Choice] = Coalescer(self.score, settings.max_batch)
        metrics.model_ready.set(0)
        # The alert rules compare the PSI with these, so the server and the alerts agree.
        metrics.drift_threshold.labels("warning").set(settings.drift_warning_psi)
        metrics.drift_threshold.labels("drift").set(settings.drift_threshold_psi)
        # Counters exist at zero from the start: rate() and increase() cannot see a series'
        # first sample, so one created by its first increment would hide that increment.
        for slot in (self.champion, self.challenger):
            if slot is not None:
                metrics.reload_failures.labels(slot.variant)
        if self.shadow:
            metrics.shadow_agreement.labels("agree")
            metrics.shadow_agreement.labels("disagree")
        self._forget_drift()

    def _forget_drift(self) -> None:
        """No drift figures until the current model has seen traffic (NaN is "unknown", not 0)."""
        self.metrics.feature_drift.clear()
        self.metrics.prediction_drift.set(float("nan"))

    def _champion_swapped(self, model: Model) -> None:
        self.metrics.model_ready.set(1)
        self._forget_drift()  # the old model's drift says nothing about the new one
        settings = self.settings
        self.drift = DriftMonitor.for_model(
            model.drift_reference,
            model.features,
            settings.drift_window,
            model.version,
            min_rows=settings.drift_min_rows,
            rows_per_request=settings.drift_rows_per_request,
            warning_psi=settings.drift_warning_psi,
            threshold_psi=settings.drift_threshold_psi,
        )

    @property
    def ready(self) -> bool:
        return self.champion.model is not None and not self.draining

    def pick(self) -> "Choice":
        """The model for this request: the challenger for its share of requests, else the champion.

        The server draws for every request: a split keyed on anything the client sends (its
        X-Request-ID, say) would let the client choose its variant.
        """
        slot = self.champion
        if (
            self.split
            and self.challenger is not None
            and self.challenger.current is not None
            and random.getrandbits(32) < self._threshold
        ):
            slot = self.challenger
        current = slot.current
        if current is None:
            raise ModelNotReady(f"no model loaded yet: {self.champion.status}")
        return Choice(current[0], current[1], slot is self.champion)

    def choose(self, slot: ModelSlot) -> "Choice":
        """A specific variant's model (the Open Inference Protocol names versions)."""
        current = slot.current
        if current is None:
            raise ModelNotReady(f"no model loaded yet: {slot.status}")
        return Choice(current[0], current[1], slot is self.champion)

    def score(self, choice: "Choice", rows: np.ndarray) -> Predictions:
        """Predict, count, and feed drift detection and the shadow: the data plane, no HTTP."""
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
        if choice.is_champion and choice.model is self.champion.model:
            if self.drift is not None:
                self.drift.record(rows, answers)
            if self.shadow:
                asyncio.get_running_loop().call_soon(self.shadow_score, rows, answers)
        return result

    def shadow_score(self, rows: np.ndarray, champion_answer: np.ndarray) -> None:
        """Score the challenger on the same rows; called off the response path."""
        challenger = self.challenger.model if self.challenger is not None else None
        if challenger is None:
            return
        try:
            result = challenger.predict(rows)
        except Exception:  # the shadow must never affect serving
            log.exception("shadow scoring failed", extra={"version": challenger.version})
            return
        assert self.challenger is not None
        current = self.challenger.current
        if current is not None and current[0] is challenger:
            current[1].inference.observe(result.seconds)
        answer = result.class_indices if result.class_indices is not None else result.values
        assert answer is not None
        if challenger.is_classifier:
            agree = int(np.count_nonzero(answer == champion_answer))
        else:
            agree = int(np.count_nonzero(np.isclose(answer, champion_answer, rtol=0.05)))
        if agree:
            self.metrics.shadow_agreement.labels("agree").inc(agree)
        if len(rows) - agree:
            self.metrics.shadow_agreement.labels("disagree").inc(len(rows) - agree)

    async def run(self) -> None:
        tasks = [self.champion.run()]
        if self.challenger is not None:
            tasks.append(self.challenger.run())
        tasks.append(self._drift_loop())
        await asyncio.gather(*tasks)

    async def _drift_loop(self) -> None:
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
