"""Request limits: the concurrency every front end shares, and a deadline on reading a body.

A deadline on reading the request body, so a client trickling bytes cannot hold a request open.

uvicorn bounds the idle time between requests but not the time a body takes to arrive; without
this, a client sending one byte a second keeps a request (and a MAX_CONCURRENCY slot) for as long
as it likes.

One watchdog serves every request: a read registers its task and deadline in a dict, and a
watchdog that ticks while reads are pending cancels the overdue ones. A timer per request
(`asyncio.timeout_at`) costs about 6 µs on uvloop, a dict entry 0.1 µs; the price is that a
deadline is enforced to within a tick (a tenth of it, between 10 ms and one second) rather than
exactly.
"""

import asyncio
from typing import Any

from starlette.types import Message, Receive

from server.errors import RequestTimeout
from server.event_loop import current_task, running_loop


class Concurrency:
    """Requests in flight across every front end (HTTP and gRPC), against MAX_CONCURRENCY."""

    def __init__(self, limit: int) -> None:
        self.limit = limit  # 0: no limit
        self.in_flight = 0

    def full(self) -> bool:
        return bool(self.limit) and self.in_flight >= self.limit


class BodyDeadlines:
    """Wraps `receive` so the body must be in `seconds` after its first read, or 408."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._tick = min(1.0, max(0.01, seconds / 10))
        self._reading: dict[asyncio.Task[Any], float] = {}
        self._overdue: set[asyncio.Task[Any]] = set()
        self._watchdog: asyncio.Task[None] | None = None
        self._reads = 0  # reads started: the watchdog ends only after a tick without one

    def receive(self, receive: Receive) -> Receive:
        if not self.seconds:
            return receive
        deadline: float | None = None
        complete = False

        async def receive_before_deadline() -> Message:
            nonlocal complete, deadline
            if complete:  # the body is in; later reads only wait for a disconnect
                return await receive()
            task = current_task()
            assert task is not None
            if deadline is None:
                deadline = running_loop().time() + self.seconds
            self._reading[task] = deadline
            self._reads += 1
            if self._watchdog is None:
                self._watchdog = asyncio.create_task(self._watch(), name="body-deadlines")
            try:
                message = await receive()
            except asyncio.CancelledError:
                # Ours only if the watchdog cancelled it and nobody else did too (a shutdown).
                if task not in self._overdue or task.uncancel() > 0:
                    raise
                raise RequestTimeout(
                    f"the request body did not arrive within {self.seconds:g} seconds"
                ) from None
            finally:
                del self._reading[task]
                self._overdue.discard(task)
            if message["type"] != "http.request" or not message.get("more_body", False):
                complete = True
            return message

        return receive_before_deadline

    async def _watch(self) -> None:
        """Cancel overdue reads, every tick while reads are waiting or starting.

        It stays on while requests keep coming, even if each body is in at once (the usual case),
        rather than ending with each and being started again by the next: a task per request.
        """
        loop = asyncio.get_running_loop()
        seen = -1
        try:
            while self._reading or self._reads != seen:
                seen = self._reads
                await asyncio.sleep(self._tick)
                now = loop.time()
                for task, deadline in list(self._reading.items()):
                    if deadline <= now and task not in self._overdue:
                        self._overdue.add(task)
                        task.cancel()
        finally:
            self._watchdog = None
