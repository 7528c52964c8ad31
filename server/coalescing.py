"""Scoring the requests that are ready at the same moment in one onnxruntime call.

Under concurrent load the event loop wakes with several requests parsed and waiting; each would
pay onnxruntime's fixed per-call cost (about 7 µs in a tight loop, two to three times that on a
cold request path) for its one row. Here the first request of a loop turn schedules a flush with
`call_soon`, every request that reaches scoring in the same turn joins it, and the flush runs
them as one batch, then hands each request its own rows of the result. Nothing waits for
company: a lone request is scored on the next turn of the loop, a few microseconds later.
"""

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, NamedTuple, Protocol, TypeVar

import numpy as np

from server.event_loop import running_loop
from server.model import Model, Predictions


class _Picked(Protocol):
    @property
    def model(self) -> Model: ...


ChoiceT = TypeVar("ChoiceT", bound=_Picked)


class _Waiting(NamedTuple, Generic[ChoiceT]):
    choice: ChoiceT
    rows: np.ndarray
    answer: "asyncio.Future[Predictions]"
    key: bytes


# The score function gets, with the batch, each request's id and row count, in order.
Keys = Sequence[tuple[bytes, int]]


class Coalescer(Generic[ChoiceT]):
    """Joins concurrent `score` calls for the same model into one call of at most `max_rows`."""

    def __init__(
        self, score: Callable[[ChoiceT, np.ndarray, Keys], Predictions], max_rows: int
    ) -> None:
        self._score = score
        self._max_rows = max_rows
        self._waiting: list[_Waiting[ChoiceT]] = []
        self.calls = 0  # model calls made, for tests and benchmarks

    def score(
        self, choice: ChoiceT, rows: np.ndarray, key: bytes = b""
    ) -> "asyncio.Future[Predictions]":
        """The predictions for `rows`, once the flush has run; await it.

        A plain function returning the future, not a coroutine: one frame fewer to suspend and
        resume on every request.
        """
        loop = running_loop()
        answer: asyncio.Future[Predictions] = loop.create_future()
        if not self._waiting:
            loop.call_soon(self._flush)
        self._waiting.append(_Waiting(choice, rows, answer, key))
        return answer

    def _flush(self) -> None:
        waiting, self._waiting = self._waiting, []
        # A request cancelled while it waited (its client went away) is not scored.
        waiting = [w for w in waiting if not w.answer.done()]
        try:
            while waiting:
                group, waiting = self._next_group(waiting)
                self._run(group)
        finally:
            # Whatever went wrong, no request is left waiting for an answer that will not come.
            for entry in waiting:
                if not entry.answer.done():
                    entry.answer.set_exception(RuntimeError("the batch was abandoned"))

    def _next_group(
        self, waiting: list[_Waiting[ChoiceT]]
    ) -> tuple[list[_Waiting[ChoiceT]], list[_Waiting[ChoiceT]]]:
        """The first request and every later one for the same model that fits the row cap."""
        model = waiting[0].choice.model
        group: list[_Waiting[ChoiceT]] = []
        rest: list[_Waiting[ChoiceT]] = []
        rows = 0
        for entry in waiting:
            # Requests that picked another model (a swap, the challenger) go in a later call, as
            # do those past the row cap; the first request always fits.
            if entry.choice.model is model and (
                not group or rows + len(entry.rows) <= self._max_rows
            ):
                group.append(entry)
                rows += len(entry.rows)
            else:
                rest.append(entry)
        return group, rest

    def _run(self, group: list[_Waiting[ChoiceT]]) -> None:
        self.calls += 1
        try:
            if len(group) == 1:
                only = group[0]
                only.answer.set_result(
                    self._score(only.choice, only.rows, ((only.key, len(only.rows)),))
                )
                return
            keys = [(w.key, len(w.rows)) for w in group]
            result = self._score(group[0].choice, np.concatenate([w.rows for w in group]), keys)
            start = 0
            for entry in group:
                stop = start + len(entry.rows)
                entry.answer.set_result(result.rows(start, stop))
                start = stop
        except Exception as exc:  # every request of the call gets the error, and maps it
            for entry in group:
                if not entry.answer.done():
                    entry.answer.set_exception(exc)
