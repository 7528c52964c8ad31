"""BodyDeadline: a body that does not arrive in time fails the read with RequestTimeout."""

import asyncio

import pytest
from starlette.types import Message, Receive, Scope, Send

from server.errors import RequestTimeout
from server.limits import BodyDeadline

SCOPE = {"type": "http", "method": "POST", "path": "/predict", "headers": []}


def reader(delays: list[float]) -> Receive:
    """A receive() that yields one body chunk after each delay, the last one final."""
    chunks = list(delays)

    async def receive() -> Message:
        if not chunks:
            await asyncio.sleep(3600)  # only a disconnect would come now
        await asyncio.sleep(chunks.pop(0))
        return {"type": "http.request", "body": b"x", "more_body": bool(chunks)}

    return receive


async def read_all(scope: Scope, receive: Receive, send: Send) -> None:
    while (await receive()).get("more_body"):
        pass


async def send(message: Message) -> None:
    raise AssertionError("nothing is sent")


def test_a_body_in_time_passes() -> None:
    asyncio.run(BodyDeadline(read_all, 0.5)(SCOPE, reader([0.05, 0.05, 0.05]), send))


def test_a_trickled_body_times_out() -> None:
    with pytest.raises(RequestTimeout, match=r"0\.2 seconds"):
        asyncio.run(BodyDeadline(read_all, 0.2)(SCOPE, reader([0.1, 0.1, 0.1]), send))


def test_zero_turns_it_off() -> None:
    asyncio.run(BodyDeadline(read_all, 0)(SCOPE, reader([0.05, 0.05]), send))


def test_after_the_body_the_deadline_no_longer_applies() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await read_all(scope, receive, send)
        with pytest.raises(TimeoutError):  # waiting for a disconnect is not a body read
            await asyncio.wait_for(receive(), 0.3)

    asyncio.run(BodyDeadline(app, 0.2)(SCOPE, reader([0.01]), send))
