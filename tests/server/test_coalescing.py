"""Coalescer: requests ready in the same loop turn share one model call, each gets its own rows."""

import asyncio
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest

from server.coalescing import Coalescer
from server.model import Model, Origin, Predictions, load_model
from server.registry import read_model_dir


class Pick(NamedTuple):
    model: Model


class Recorder:
    """A score function that runs the real model and remembers the batch of every call."""

    def __init__(self) -> None:
        self.batches: list[np.ndarray] = []
        self.keys: list[Any] = []

    def __call__(self, pick: Pick, rows: np.ndarray, keys: object = ()) -> Predictions:
        self.batches.append(rows)
        self.keys.append(keys)
        return pick.model.predict(rows)


def iris(model_dirs: dict[str, Path], version: str = "1") -> Model:
    path: Path = model_dirs["iris"]
    return load_model(read_model_dir(path), Origin(str(path), "local", version))


def rows(n: int, seed: int) -> np.ndarray:
    generator = np.random.default_rng(seed)
    return (generator.random((n, 4)) * [4, 2, 6, 2.5] + [4, 2, 1, 0.1]).astype(np.float32)


def test_concurrent_requests_share_one_call_and_get_their_own_rows(
    model_dirs: dict[str, Path],
) -> None:
    model = iris(model_dirs)
    score = Recorder()
    coalescer = Coalescer(score, max_rows=1000)
    requests = [rows(n, seed) for seed, n in enumerate([1, 3, 1, 7, 2])]

    async def all_at_once() -> list[Predictions]:
        return await asyncio.gather(*(coalescer.score(Pick(model), r) for r in requests))

    results = asyncio.run(all_at_once())
    assert coalescer.calls == 1
    assert [len(b) for b in score.batches] == [14]
    for request, result in zip(requests, results, strict=True):
        alone = model.predict(request)
        assert result.class_indices is not None
        assert alone.class_indices is not None
        assert result.probabilities is not None
        assert alone.probabilities is not None
        np.testing.assert_array_equal(result.class_indices, alone.class_indices)
        np.testing.assert_allclose(result.probabilities, alone.probabilities, rtol=1e-6)
        assert [r.shape for r in result.raw] == [r.shape for r in alone.raw]


def test_a_lone_request_is_scored_on_the_next_loop_turn(model_dirs: dict[str, Path]) -> None:
    model = iris(model_dirs)
    score = Recorder()
    coalescer = Coalescer(score, max_rows=1000)

    async def one_by_one() -> None:
        for seed in range(3):
            await coalescer.score(Pick(model), rows(2, seed))

    asyncio.run(one_by_one())
    assert coalescer.calls == 3
    assert [len(b) for b in score.batches] == [2, 2, 2]


def test_requests_for_different_models_get_separate_calls(model_dirs: dict[str, Path]) -> None:
    champion, challenger = iris(model_dirs, "1"), iris(model_dirs, "2")
    score = Recorder()
    coalescer = Coalescer(score, max_rows=1000)
    picks = [Pick(champion), Pick(challenger), Pick(champion), Pick(challenger), Pick(champion)]

    async def mixed() -> list[Predictions]:
        return await asyncio.gather(*(coalescer.score(p, rows(1, i)) for i, p in enumerate(picks)))

    results = asyncio.run(mixed())
    assert [len(b) for b in score.batches] == [3, 2]
    assert all(len(r.raw[0]) == 1 for r in results)


def test_a_call_never_exceeds_the_row_cap_unless_one_request_does(
    model_dirs: dict[str, Path],
) -> None:
    model = iris(model_dirs)
    score = Recorder()
    coalescer = Coalescer(score, max_rows=10)
    sizes = [4, 4, 4, 25, 1]

    async def crowd() -> list[Predictions]:
        return await asyncio.gather(*(coalescer.score(Pick(model), rows(n, n)) for n in sizes))

    results = asyncio.run(crowd())
    assert [len(b) for b in score.batches] == [9, 4, 25]  # 4+4+1, then 4, then the big one alone
    assert [len(r.raw[0]) for r in results] == sizes


def test_a_failed_call_fails_every_request_in_it(model_dirs: dict[str, Path]) -> None:
    model = iris(model_dirs)

    def broken(pick: Pick, batch: np.ndarray, keys: object) -> Predictions:
        raise RuntimeError("onnxruntime fell over")

    coalescer = Coalescer(broken, max_rows=1000)

    async def crowd() -> list[object]:
        calls = [coalescer.score(Pick(model), rows(1, i)) for i in range(4)]
        return await asyncio.gather(*calls, return_exceptions=True)

    results = asyncio.run(crowd())
    assert all(isinstance(r, RuntimeError) for r in results)
    assert coalescer.calls == 1


def test_a_request_cancelled_while_waiting_is_not_scored(model_dirs: dict[str, Path]) -> None:
    model = iris(model_dirs)
    score = Recorder()
    coalescer = Coalescer(score, max_rows=1000)

    async def one_leaves() -> Predictions:
        leaving = coalescer.score(Pick(model), rows(5, 0))
        staying = coalescer.score(Pick(model), rows(2, 1))
        leaving.cancel()  # as when the task awaiting it is cancelled before the flush runs
        with pytest.raises(asyncio.CancelledError):
            await leaving
        return await staying

    result = asyncio.run(asyncio.wait_for(one_leaves(), 10))
    assert [len(b) for b in score.batches] == [2]
    assert len(result.raw[0]) == 2


def test_a_failure_after_scoring_reaches_every_request_instead_of_hanging(
    model_dirs: dict[str, Path],
) -> None:
    model = iris(model_dirs)

    def unsliceable(pick: Pick, batch: np.ndarray, keys: object) -> Predictions:
        return Predictions.__new__(Predictions)  # no attributes: splitting it raises

    coalescer = Coalescer(unsliceable, max_rows=1000)

    async def crowd() -> list[object]:
        calls = [coalescer.score(Pick(model), rows(1, i)) for i in range(3)]
        return await asyncio.gather(*calls, return_exceptions=True)

    results = asyncio.run(asyncio.wait_for(crowd(), 10))
    assert all(isinstance(r, AttributeError) for r in results)


def test_each_request_id_travels_with_its_rows(model_dirs: dict[str, Path]) -> None:
    model = iris(model_dirs)
    score = Recorder()
    coalescer = Coalescer(score, max_rows=1000)

    async def crowd() -> list[Predictions]:
        calls = [coalescer.score(Pick(model), rows(n, n), b"id-%d" % n) for n in (1, 3, 2)]
        return await asyncio.gather(*calls)

    asyncio.run(crowd())
    assert [list(k) for k in score.keys] == [[(b"id-1", 1), (b"id-3", 3), (b"id-2", 2)]]
