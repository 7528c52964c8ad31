"""A deadline on reading the request body, so a client trickling bytes cannot hold a request open.

uvicorn bounds the idle time between requests but not the time a body takes to arrive; without
this, a client sending one byte a second keeps a request (and a MAX_CONCURRENCY slot) for as long
as it likes.
"""

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.errors import RequestTimeout


class BodyDeadline:
    """Fail the body read with 408 once `seconds` have passed since the request's headers."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.seconds:
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.seconds
        complete = False

        async def receive_before_deadline() -> Message:
            nonlocal complete
            if complete:  # the body is in; later reads only wait for a disconnect
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise RequestTimeout(
                    f"the request body did not arrive within {self.seconds:g} seconds"
                ) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                complete = True
            return message

        await self.app(scope, receive_before_deadline, send)
