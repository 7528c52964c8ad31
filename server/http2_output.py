"""What one HTTP/2 connection writes: answers as frames, within the client's windows and pace.

server/http2.py reads a connection (frames in, streams, limits); this module is its other half,
kept apart because the two share little: the output owns the send windows the client grants,
the frames queued while input is handled, and whether the transport has asked it to stop
writing. The input side tells it when windows open (WINDOW_UPDATE, SETTINGS); it tells the input
side when an answer has ended a stream, or when a window stayed shut too long.

An answer is a HEADERS block, DATA frames and a trailers HEADERS block with END_STREAM (fields
as HPACK literals, so no encoder state is kept). What a client can make the output hold or cost
is bounded, since the port faces the network:
- an answer waiting on the client's stream window ANSWER_TIMEOUT_SECONDS resets its stream; one
  waiting that long on the connection's window, or on a TCP buffer the client does not read,
  closes the connection (as does a transport paused that long, found by the connection's sweep);
- every answer is written now or by a task the output holds: no caller can drop one;
- frames queued while input is handled go in one write, or as soon as FLUSH_BYTES are queued,
  so the transport can say its buffer is full before more input is handled;
- nothing is written once the connection is lost.
"""

import asyncio
from typing import TYPE_CHECKING

from server.http2_wire import (
    CANCEL,
    CONTINUATION,
    DATA,
    DEFAULT_FRAME_SIZE,
    DEFAULT_WINDOW,
    END_HEADERS,
    END_STREAM,
    ENHANCE_YOUR_CALM,
    FLOW_CONTROL_ERROR,
    HEADERS,
    NO_ERROR,
    RST_STREAM,
    UINT32,
    frame,
    frame_head,
)

if TYPE_CHECKING:  # the connection imports this module
    from server.http2 import Connection, Stream

ANSWER_TIMEOUT_SECONDS = 30.0
FLUSH_BYTES = 64 * 1024  # output queued while handling input is written past this, so the
# transport can say its buffer is full (pause_writing) before more input is handled


class Output:
    """One connection's writes: answers framed within the windows, queued while input is
    handled, held while the transport is paused."""

    __slots__ = (
        "_answering",
        "_changed",
        "close_after",
        "connection",
        "handling",
        "paused",
        "paused_at",
        "peer_max_frame",
        "queue",
        "send_window",
        "transport",
    )  # fmt: skip

    def __init__(self, connection: "Connection") -> None:
        self.connection = connection
        # Set once the connection is admitted; None again once it is lost: nothing is written.
        self.transport: asyncio.Transport | None = None
        self.queue = bytearray()  # frames queued while input is handled, written once
        self.handling = False  # input is being handled: frames are queued, not written
        self.close_after = False  # close once what input handling queued is written
        self.send_window = DEFAULT_WINDOW  # the connection's, as the client grants it
        self.peer_max_frame = DEFAULT_FRAME_SIZE
        self.paused = False  # the transport's buffer is past its high-water mark
        self.paused_at = 0.0
        self._answering: set[asyncio.Task[None]] = set()  # answers waiting to be written
        self._changed: asyncio.Future[None] | None = None  # window opened, or writing resumed

    def send(self, data: bytes) -> None:
        """Write `data`, or queue it while input is handled (one write for all it causes)."""
        transport = self.transport
        if transport is None:
            return
        if self.handling:
            self.queue += data
        else:
            transport.write(data)

    def write_queued(self) -> None:
        """Write what input handling has queued so far (past FLUSH_BYTES, before the rest)."""
        if self.transport is not None:
            self.transport.write(bytes(self.queue))  # may pause writing
            self.queue.clear()

    def flush(self) -> None:
        """Input handled: what it queued goes in one write, then a close it asked for."""
        if self.queue:
            self.write_queued()
        if self.close_after and self.transport is not None:
            self.transport.close()

    def close(self) -> None:
        """Close the transport, after what input handling has queued is written."""
        if self.handling:
            self.close_after = True
        elif self.transport is not None:
            self.transport.close()

    def end(self, last: bytes) -> None:
        """Write what is queued, then `last` (a connection error's GOAWAY), and close."""
        transport = self.transport
        if transport is None:
            return
        if self.queue:
            last = bytes(self.queue) + last
            self.queue.clear()
        transport.write(last)
        transport.close()

    def stop(self) -> None:
        """The connection is lost: nothing more is written; answers waiting see it and end."""
        self.transport = None
        self.wake()

    def pause(self, now: float) -> None:
        self.paused = True
        self.paused_at = now

    def resume(self) -> None:
        self.paused = False
        self.wake()

    def stuck(self, now: float) -> bool:
        """Paused past ANSWER_TIMEOUT_SECONDS: the client has not read for that long."""
        return self.paused and now - self.paused_at > ANSWER_TIMEOUT_SECONDS

    def wake(self) -> None:
        """A window opened or writing resumed (or the connection is lost): waiting answers
        look again."""
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)

    def answer(
        self, stream: "Stream", head: bytes, data: bytes, trailers: bytes
    ) -> "asyncio.Task[None] | None":
        """Send an answer: `head` block, `data` in DATA frames, `trailers` block with
        END_STREAM (`data` empty and `head` empty: a trailers-only answer).

        Returns None when it went out at once, else the task writing the rest as the client's
        windows (or its TCP buffer) allow, up to ANSWER_TIMEOUT_SECONDS. The output holds
        that task: a caller may await it (a call stays counted until answered) or drop it.
        """
        if stream.closed or self.transport is None:
            return None
        if len(data) <= min(self.send_window, stream.send_window, self.peer_max_frame) and (
            not self.paused
        ):
            out = self._block_frames(head, 0, stream.id) if head else b""
            if data:
                out += frame_head(len(data), DATA, 0, stream.id) + data
                self.send_window -= len(data)
                stream.send_window -= len(data)
            self.send(out + self._block_frames(trailers, END_STREAM, stream.id))
            self._finish(stream)
            return None
        task = asyncio.get_running_loop().create_task(
            self._answer_slowly(stream, head, data, trailers)
        )
        self._answering.add(task)
        task.add_done_callback(self._answering.discard)
        return task

    async def _answer_slowly(
        self, stream: "Stream", head: bytes, data: bytes, trailers: bytes
    ) -> None:
        # Frames gather in `out` and go in one write, unless a window or the TCP buffer is
        # shut: then what is ready goes first, and the rest waits.
        out = bytearray(self._block_frames(head, 0, stream.id) if head else b"")
        view = memoryview(data)
        pos = 0
        while pos < len(data):
            size = min(len(data) - pos, self.send_window, stream.send_window, self.peer_max_frame)
            if size <= 0 or self.paused:
                if out:
                    self.send(bytes(out))
                    out.clear()
                if not await self._wait_to_write(stream):
                    return
                continue
            out += frame_head(size, DATA, 0, stream.id)
            out += view[pos : pos + size]
            self.send_window -= size
            stream.send_window -= size
            pos += size
        if self.paused:
            if out:
                self.send(bytes(out))
                out.clear()
            if not await self._wait_to_write(stream):
                return
        if not stream.closed and self.transport is not None:
            out += self._block_frames(trailers, END_STREAM, stream.id)
            self.send(bytes(out))
            self._finish(stream)

    async def _wait_to_write(self, stream: "Stream") -> bool:
        """Wait for window or the TCP buffer; False if the stream or connection ended."""
        if self._changed is None or self._changed.done():
            self._changed = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(ANSWER_TIMEOUT_SECONDS):
                await asyncio.shield(self._changed)
        except TimeoutError:
            connection = self.connection
            if stream.send_window <= 0 and self.send_window > 0 and not self.paused:
                connection.reset(stream, CANCEL)  # this stream's window stayed shut
            else:  # the connection's own window or TCP buffer stayed shut
                connection.fail(FLOW_CONTROL_ERROR if not self.paused else ENHANCE_YOUR_CALM)
                connection.abort()
            return False
        return not stream.closed and self.transport is not None

    def _finish(self, stream: "Stream") -> None:
        """The answer has ended the stream: if the client is still sending, it is told to stop."""
        if not stream.ended:
            self.send(frame(RST_STREAM, 0, stream.id, UINT32.pack(NO_ERROR)))
        self.connection.close_stream(stream)

    def _block_frames(self, block: bytes, flags: int, stream_id: int) -> bytes:
        """A header block as HEADERS and, past the peer's frame size, CONTINUATION frames."""
        size = self.peer_max_frame
        if len(block) <= size:
            return frame_head(len(block), HEADERS, flags | END_HEADERS, stream_id) + block
        out = [frame_head(size, HEADERS, flags, stream_id), block[:size]]
        for i in range(size, len(block), size):
            piece = block[i : i + size]
            last = END_HEADERS if i + size >= len(block) else 0
            out += [frame_head(len(piece), CONTINUATION, last, stream_id), piece]
        return b"".join(out)
