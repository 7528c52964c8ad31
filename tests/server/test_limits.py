"""BodyDeadlines: a body that does not arrive in time fails the read with RequestTimeout."""

import asyncio
from typing import Any

import pytest
from starlette.types import Message, Receive

from server.errors import RequestTimeout
from server.limits import BodyDeadlines


def reader(delays: list[float]) -> Receive:
    """A receive() that yields one body chunk after each delay, the last one final."""
    chunks = list(delays)

    async def receive() -> Message:
        if not chunks:
            await asyncio.sleep(3600)  # only a disconnect would come now
        await asyncio.sleep(chunks.pop(0))
        return {"type": "http.request", "body": b"x", "more_body": bool(chunks)}

    return receive


async def read_all(receive: Receive) -> int:
    chunks = 1
    while (await receive()).get("more_body"):
        chunks += 1
    return chunks


def test_a_body_in_time_passes() -> None:
    deadlines = BodyDeadlines(0.5)
    assert asyncio.run(read_all(deadlines.receive(reader([0.05, 0.05, 0.05])))) == 3


def test_a_trickled_body_times_out_within_a_tick_of_the_deadline() -> None:
    deadlines = BodyDeadlines(0.2)

    async def trickle() -> float:
        started = asyncio.get_running_loop().time()
        with pytest.raises(RequestTimeout, match=r"0\.2 seconds"):
            await read_all(deadlines.receive(reader([0.1, 0.1, 0.1, 0.1])))
        return asyncio.get_running_loop().time() - started

    elapsed = asyncio.run(trickle())
    assert 0.2 <= elapsed < 0.2 + 2 * deadlines._tick + 0.5  # slack for a loaded CI machine


def test_the_timeout_leaves_the_task_usable() -> None:
    """The watchdog's cancellation is taken back: the request can still answer its 408."""
    deadlines = BodyDeadlines(0.1)

    async def answer() -> str:
        try:
            await read_all(deadlines.receive(reader([1.0])))
        except RequestTimeout:
            task = asyncio.current_task()
            assert task is not None
            assert task.cancelling() == 0  # a pending cancellation would end the 408 early
            await asyncio.sleep(0.01)
            return "answered"
        return "read"

    assert asyncio.run(answer()) == "answered"


def test_another_cancellation_is_not_turned_into_a_timeout() -> None:
    deadlines = BodyDeadlines(5)

    async def cancelled() -> None:
        task = asyncio.create_task(read_all(deadlines.receive(reader([1.0]))))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancelled())


def test_many_concurrent_reads_each_get_their_own_deadline() -> None:
    deadlines = BodyDeadlines(0.3)

    async def mixed() -> list[object]:
        fast = [read_all(deadlines.receive(reader([0.01, 0.01]))) for _ in range(20)]
        slow = [read_all(deadlines.receive(reader([0.2, 0.2, 0.2]))) for _ in range(5)]
        return await asyncio.gather(*fast, *slow, return_exceptions=True)

    results = asyncio.run(mixed())
    assert results[:20] == [2] * 20
    assert all(isinstance(r, RequestTimeout) for r in results[20:])
    assert not deadlines._reading
    assert not deadlines._overdue


def test_zero_turns_it_off() -> None:
    receive = reader([0.05, 0.05])
    assert BodyDeadlines(0).receive(receive) is receive


def test_after_the_body_the_deadline_no_longer_applies() -> None:
    deadlines = BodyDeadlines(0.2)

    async def wait_for_disconnect() -> None:
        receive = deadlines.receive(reader([0.01]))
        await read_all(receive)
        with pytest.raises(TimeoutError):  # waiting for a disconnect is not a body read
            await asyncio.wait_for(receive(), 0.4)

    asyncio.run(wait_for_disconnect())


def test_a_shutdown_during_an_overdue_read_is_still_a_cancellation() -> None:
    deadlines = BodyDeadlines(0.1)

    async def shutdown_while_overdue() -> None:
        task = asyncio.create_task(read_all(deadlines.receive(reader([5.0]))))
        while task not in deadlines._overdue:  # the watchdog has cancelled it, not yet run
            await asyncio.sleep(0)
        task.cancel()  # and the server cancels it too before it runs
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(shutdown_while_overdue())


def test_the_watchdog_stops_when_idle_and_starts_again() -> None:
    deadlines = BodyDeadlines(0.2)

    async def two_bursts() -> tuple[int | BaseException, int | BaseException]:
        await read_all(deadlines.receive(reader([0.01])))
        while deadlines._watchdog is not None:  # nothing left to watch: it ends within a tick
            await asyncio.sleep(0.01)
        return await asyncio.gather(
            read_all(deadlines.receive(reader([0.01]))),
            read_all(deadlines.receive(reader([0.5]))),
            return_exceptions=True,
        )

    fast, slow = asyncio.run(asyncio.wait_for(two_bursts(), 10))
    assert fast == 1
    assert isinstance(slow, RequestTimeout)


def test_one_watchdog_serves_a_stream_of_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests whose body is already in (the usual case) do not each start a watchdog task."""
    deadlines = BodyDeadlines(10)
    started: list[str] = []
    create_task = asyncio.create_task

    def counting(coro: Any, **kwargs: Any) -> "asyncio.Task[Any]":
        started.append(kwargs.get("name", ""))
        return create_task(coro, **kwargs)

    monkeypatch.setattr(asyncio, "create_task", counting)

    async def instant() -> Message:
        return {"type": "http.request", "body": b"x", "more_body": False}

    async def stream() -> None:
        for _ in range(200):
            await read_all(deadlines.receive(instant))
            await asyncio.sleep(0)  # the loop runs whatever the read started

    asyncio.run(stream())
    assert started == ["body-deadlines"]
