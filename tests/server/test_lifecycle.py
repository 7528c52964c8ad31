"""The model lifecycle: loading, the fallback rule, retries with backoff, swaps and polling.

The registry here is an in-memory one with the registry interface: the rules under test are the
server's answers to what a registry says; the real MLflow server is in tests/integration.
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from server.errors import ModelLoadError
from server.lifecycle import Models
from server.metrics import Metrics
from server.model import Model, ModelFiles
from server.registry import ModelReference, RegistryUnavailable, read_model_dir
from server.settings import Settings


@dataclass
class MemoryRegistry:
    """Aliases and versions in dicts; `down` makes every call fail as an unreachable server would."""

    aliases: dict[str, str] = field(default_factory=dict)
    versions: dict[str, ModelFiles] = field(default_factory=dict)
    broken: set[str] = field(default_factory=set)  # versions whose artifacts cannot be read
    down: bool = False
    fetches: list[str] = field(default_factory=list)

    def resolve(self, reference: ModelReference) -> str:
        if self.down:
            raise RegistryUnavailable("cannot reach MLflow at http://mlflow:5000")
        if reference.alias is None:
            return str(reference.version)
        if reference.alias not in self.aliases:
            raise ModelLoadError(f"{reference.uri}: no such model or alias in the registry")
        return self.aliases[reference.alias]

    def fetch(self, name: str, version: str) -> ModelFiles:
        if self.down:
            raise RegistryUnavailable("cannot reach MLflow at http://mlflow:5000")
        self.fetches.append(version)
        if version in self.broken:
            raise ModelLoadError(f"not found in the registry: artifacts of version {version}")
        if version not in self.versions:
            raise ModelLoadError(f"models:/{name}/{version}: no such version in the registry")
        return self.versions[version]


@dataclass
class Harness:
    models: Models
    metrics: Metrics
    registry: MemoryRegistry
    swaps: list[tuple[str, Model | None]]

    @property
    def source(self) -> str | None:
        model = self.models.champion.model
        return model.origin.source if model else None


def harness(settings: Settings, registry: MemoryRegistry) -> Harness:
    metrics = Metrics()
    swaps: list[tuple[str, Model | None]] = []
    models = Models(settings, lambda: registry, metrics, lambda v, m: swaps.append((v, m)))
    return Harness(models, metrics, registry, swaps)


def settings(model_dirs: dict[str, Path], uri: str, **changes: object) -> Settings:
    base: dict[str, object] = {
        "model_uri": uri,
        "fallback_path": model_dirs["iris"],
        "retry_seconds": 0.05,
        "poll_seconds": 0.05,
    }
    return Settings(**{**base, **changes})  # type: ignore[arg-type]


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def run_for(h: Harness, body: Callable[[], object]) -> None:
    async def main() -> None:
        task = asyncio.create_task(h.models.run())
        try:
            await body()  # type: ignore[misc]
        finally:
            task.cancel()

    asyncio.run(main())


def test_an_unreachable_registry_serves_the_fallback(model_dirs: dict[str, Path]) -> None:
    h = harness(settings(model_dirs, "models:/iris-classifier/3"), MemoryRegistry(down=True))

    async def body() -> None:
        await until(lambda: h.models.ready)
        assert h.source == "fallback"

    run_for(h, body)
    text = h.metrics.exposition()[0].decode()
    assert 'source="fallback"' in text
    assert "model_ready 1.0" in text


def test_a_registry_that_has_no_such_version_is_not_ready_not_the_fallback(
    model_dirs: dict[str, Path],
) -> None:
    """A fresh cluster's empty MLflow must not be papered over by the baked-in model."""
    h = harness(settings(model_dirs, "models:/iris-classifier/3"), MemoryRegistry())

    async def body() -> None:
        await until(lambda: "no such version" in h.models.champion.status)
        await asyncio.sleep(0.2)
        assert h.models.champion.model is None
        assert not h.models.ready

    run_for(h, body)
    assert "model_ready 0.0" in h.metrics.exposition()[0].decode()


def test_the_fallback_is_withdrawn_when_the_registry_comes_back_without_the_model(
    model_dirs: dict[str, Path],
) -> None:
    registry = MemoryRegistry(down=True)
    h = harness(settings(model_dirs, "models:/iris-classifier@production"), registry)

    async def body() -> None:
        await until(lambda: h.source == "fallback")
        registry.down = False  # reachable again, and it has no @production
        await until(lambda: not h.models.ready)
        assert "no such model or alias" in h.models.not_ready_reason
        assert h.swaps[-1] == ("champion", None)

    run_for(h, body)
    text = h.metrics.exposition()[0].decode()
    assert 'source="fallback"' not in text
    assert "model_ready 0.0" in text


def test_a_version_whose_files_come_back_is_loaded_after_a_retry(
    model_dirs: dict[str, Path],
) -> None:
    files = read_model_dir(model_dirs["iris"])
    registry = MemoryRegistry(versions={"3": files}, broken={"3"})
    h = harness(settings(model_dirs, "models:/iris-classifier/3"), registry)

    async def body() -> None:
        await until(lambda: registry.fetches.count("3") >= 1)
        assert not h.models.ready
        registry.broken.clear()  # the artifacts are readable again
        await until(lambda: h.models.ready)
        assert h.source == "registry"
        assert h.models.champion.model is not None
        assert h.models.champion.model.version == "3"

    run_for(h, body)


def test_retries_of_a_broken_version_back_off(model_dirs: dict[str, Path]) -> None:
    registry = MemoryRegistry(versions={}, broken={"3"})
    h = harness(settings(model_dirs, "models:/iris-classifier/3", retry_seconds=0.02), registry)

    async def body() -> None:
        await asyncio.sleep(0.7)

    run_for(h, body)
    # Doubling from 0.02 s: tries at about 0, 0.02, 0.06, 0.14, 0.30, 0.62 s; never every tick.
    assert 3 <= registry.fetches.count("3") <= 7, registry.fetches
    assert not h.models.ready


def test_a_broken_new_version_keeps_the_current_one_and_counts_each_failure(
    model_dirs: dict[str, Path],
) -> None:
    files = read_model_dir(model_dirs["iris"])
    registry = MemoryRegistry(
        aliases={"production": "1"}, versions={"1": files, "2": files}, broken={"2"}
    )
    h = harness(settings(model_dirs, "models:/iris-classifier@production"), registry)

    async def body() -> None:
        await until(lambda: h.source == "registry")
        registry.aliases["production"] = "2"
        await until(lambda: registry.fetches.count("2") >= 2)
        assert h.models.champion.model is not None
        assert h.models.champion.model.version == "1"
        assert h.models.ready
        registry.broken.clear()
        await until(lambda: h.models.champion.model.version == "2")  # type: ignore[union-attr]

    run_for(h, body)
    text = h.metrics.exposition()[0].decode()
    failures = next(
        line for line in text.splitlines()
        if line.startswith('model_reload_failures_total{variant="champion"}')
    )  # fmt: skip
    assert float(failures.split()[-1]) >= 2


def test_a_pinned_version_is_loaded_once_and_never_polled(model_dirs: dict[str, Path]) -> None:
    files = read_model_dir(model_dirs["iris"])
    registry = MemoryRegistry(versions={"3": files})
    h = harness(settings(model_dirs, "models:/iris-classifier/3"), registry)

    async def body() -> None:
        await until(lambda: h.models.ready)
        await asyncio.sleep(0.3)

    run_for(h, body)
    assert registry.fetches == ["3"]


def test_an_unexpected_error_does_not_stop_polling(
    model_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness(settings(model_dirs, "models:/iris-classifier@production"), MemoryRegistry())
    calls = []

    async def broken() -> None:
        calls.append(1)
        raise TypeError("a bug")

    monkeypatch.setattr(h.models.champion, "_sync_with_registry", broken)

    async def body() -> None:
        await until(lambda: len(calls) > 3)

    run_for(h, body)


def test_draining_is_not_ready_whatever_is_loaded(model_dirs: dict[str, Path]) -> None:
    h = harness(settings(model_dirs, str(model_dirs["iris"])), MemoryRegistry())

    async def body() -> None:
        await until(lambda: h.models.ready)
        assert h.source == "local"
        h.models.draining = True
        assert not h.models.ready
        assert h.models.not_ready_reason == "shutting down"

    run_for(h, body)
