"""Which model serves: loading, the fallback, polling an alias, retries, atomic swaps.

Each variant (champion, optional challenger) has a slot and a background task that keeps it
current. Loading happens in worker threads, so no request waits on it. A swap publishes the new
model to the data plane through one callback (`on_swap`): that is the whole interface between the
two halves of the server.

The fallback model (baked into the image) covers an unreachable registry only. A registry that
answers, but has no such model, alias or version, or whose version cannot be loaded, is not an
outage to paper over: the server stays (or becomes) not ready and says why, so a deployment that
pins a version nobody registered fails its readiness checks instead of serving the wrong model.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from server.errors import ModelLoadError
from server.metrics import Metrics
from server.model import Model, Origin, load_model
from server.registry import (
    ModelReference,
    Registry,
    RegistryUnavailable,
    parse_model_uri,
    read_model_dir,
)
from server.settings import Settings

log = logging.getLogger("server.models")
# Retries of a version that failed to load double from MODEL_RETRY_SECONDS up to this.
MAX_RETRY_SECONDS = 300.0

OnSwap = Callable[[str, Model | None], None]


@dataclass
class _Failure:
    """A version that failed to load, and when to try it again."""

    version: str
    attempts: int
    retry_at: float


class ModelSlot:
    """One variant's model and the background task that keeps it current."""

    def __init__(
        self,
        variant: str,
        uri: str,
        settings: Settings,
        registry_factory: Callable[[], Registry],
        metrics: Metrics,
        on_swap: OnSwap,
        fallback_path: Path | None = None,
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
        self.model: Model | None = None
        self.status = "loading"
        self._failure: _Failure | None = None
        self._registry_down = False
        metrics.reload_failures.labels(variant)  # at zero from the start, for rate()

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = self._registry_factory()
        return self._registry

    def swap(self, model: Model) -> None:
        """Publish `model` as this variant's; requests already holding the old one keep it."""
        old = self.model
        self.model = model
        if old is not None:
            self.metrics.model_info.remove(old.name, old.version, old.origin.source, self.variant)
        self.metrics.model_info.labels(
            model.name, model.version, model.origin.source, self.variant
        ).set(1)
        self.metrics.model_loaded.labels(self.variant).set(model.loaded_at)
        self.status = "ready"
        self.on_swap(self.variant, model)
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

    def withdraw(self, reason: str) -> None:
        """Stop serving the current model (the fallback, once the registry says it is wrong)."""
        old = self.model
        if old is None:
            return
        self.model = None
        self.metrics.model_info.remove(old.name, old.version, old.origin.source, self.variant)
        self.on_swap(self.variant, None)
        log.error(
            "model withdrawn; not ready",
            extra={"variant": self.variant, "version": old.version, "error": reason},
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
            await asyncio.sleep(self._next_delay(from_registry))

    def _next_delay(self, from_registry: bool) -> float:
        delay = self.settings.poll_seconds if from_registry else self.settings.retry_seconds
        if self._failure is not None:
            delay = min(delay, max(0.0, self._failure.retry_at - time.monotonic()))
            delay = max(delay, self.settings.retry_seconds)
        return delay

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
        version: str | None = None
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
            failure = self._failure
            if failure is not None and failure.version == version and self._too_soon(failure):
                return  # tried and failed a moment ago; its next try is scheduled
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
            await self._fall_back(str(exc))
            return
        except (ModelLoadError, KeyError, ValueError) as exc:
            self._refused(str(exc), version)
            return
        self._failure = None
        self.swap(model)

    @staticmethod
    def _too_soon(failure: _Failure) -> bool:
        return time.monotonic() < failure.retry_at

    def _refused(self, reason: str, version: str | None) -> None:
        """The registry answered, and the answer cannot be served: retry later, with backoff."""
        attempts = 1
        if self._failure is not None and self._failure.version == version:
            attempts = self._failure.attempts + 1
        delay = min(MAX_RETRY_SECONDS, self.settings.retry_seconds * 2 ** (attempts - 1))
        self._failure = _Failure(str(version), attempts, time.monotonic() + delay)
        current = self.model
        if current is not None and current.origin.source == "registry":
            self.metrics.reload_failures.labels(self.variant).inc()
            log.error(
                "model version refused; the current model keeps serving",
                extra={
                    "variant": self.variant,
                    "version": version,
                    "error": reason,
                    "attempt": attempts,
                    "retry_in_seconds": delay,
                },
            )
            return
        # Nothing from the registry serves: the fallback is for an unreachable registry only.
        if current is not None:
            self.withdraw(f"the registry answered for {self.uri}: {reason}")
        self._not_loaded(f"cannot load {self.uri}: {reason}")

    async def _fall_back(self, reason: str) -> None:
        if self.model is not None:
            return
        if self.fallback_path is None:
            self._not_loaded(f"cannot load {self.uri}: {reason}")
            return
        try:
            files = await asyncio.to_thread(read_model_dir, self.fallback_path)
            version = str(files.metadata.get("version", "fallback"))
            origin = Origin(str(self.fallback_path), "fallback", version)
            model = await asyncio.to_thread(load_model, files, origin)
        except ModelLoadError as exc:
            self._not_loaded(f"cannot load {self.uri} ({reason}) nor the fallback: {exc}")
            return
        log.warning(
            "serving the fallback model while the registry is unreachable",
            extra={"variant": self.variant, "path": str(self.fallback_path), "error": reason},
        )
        self.swap(model)

    def _not_loaded(self, reason: str) -> None:
        if self.status != reason:
            log.error("no model loaded", extra={"variant": self.variant, "error": reason})
        self.status = reason


class Models:
    """The champion, the optional challenger, and whether the server is ready to serve."""

    def __init__(
        self,
        settings: Settings,
        registry_factory: Callable[[], Registry],
        metrics: Metrics,
        on_swap: OnSwap,
    ) -> None:
        self.metrics = metrics
        self.draining = False

        def swapped(variant: str, model: Model | None) -> None:
            if variant == "champion":
                metrics.model_ready.set(0 if model is None else 1)
            on_swap(variant, model)

        self.champion = ModelSlot(
            "champion",
            settings.model_uri,
            settings,
            registry_factory,
            metrics,
            swapped,
            fallback_path=settings.fallback_path,
        )
        self.challenger = (
            ModelSlot(
                "challenger", settings.challenger_uri, settings, registry_factory, metrics, swapped
            )
            if settings.challenger_uri and settings.challenger_mode != "off"
            else None
        )
        metrics.model_ready.set(0)

    @property
    def ready(self) -> bool:
        return self.champion.model is not None and not self.draining

    @property
    def not_ready_reason(self) -> str:
        return "shutting down" if self.draining else self.champion.status

    async def run(self) -> None:
        tasks = [self.champion.run()]
        if self.challenger is not None:
            tasks.append(self.challenger.run())
        await asyncio.gather(*tasks)
