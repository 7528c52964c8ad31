"""HTTP/2 (RFC 9113) as gRPC needs it, server side: one asyncio.Protocol per connection.

The frame layer of the builtin gRPC transport (GRPC_TRANSPORT=builtin; the calls are
server/grpc_builtin.py). It runs on the server's event loop, beside uvicorn's HTTP. Only what a
gRPC server uses is here: requests arrive as HEADERS (+ CONTINUATION) and DATA; answers go out
as HEADERS, DATA and trailers HEADERS; no push, no priorities (PRIORITY is read and ignored).
This module is the connection's input side: frames in, its streams and the bounds on them.
What it writes (answers, the client's windows, pacing) is server/http2_output.py; the wire
format (frame types, codes, frames as bytes, header field rules) is server/http2_wire.py.

What a client can make a connection hold or cost is bounded, since the port faces the network:
- each stream's request body must end within `body_deadline` seconds, else the stream is reset;
- windows are given back as DATA is buffered, not when a call ends, so parallel uploads on one
  connection cannot deadlock on the connection window; buffered bodies are capped at
  `buffer_cap` bytes per connection (100 streams' largest messages) and each body at its limit;
- a body is one bytearray, however many DATA frames it came in;
- header blocks are bounded while assembled and when decoded; the HPACK cache is capped;
- control frames (each SETTINGS entry, PING, RST_STREAM, PRIORITY, unknown types, empty DATA,
  HEADERS or CONTINUATION, a WINDOW_UPDATE that raises a window past its highest or initial
  size) draw on a budget refilled with time only, never by answers: a flood (CVE-2023-44487's
  rapid reset among them) ends with GOAWAY ENHANCE_YOUR_CALM;
- while the transport's buffer is past its high-water mark (the client is not reading), the
  connection is not read either, so input cannot make it queue answers or resets without bound;
  one paused past ANSWER_TIMEOUT_SECONDS is closed (the output's other bounds are its own);
- nothing is sent on a stream once it is closed or reset; a reset by either side cancels its
  call, which counts toward max_streams until it has ended.
Protocol errors end the connection with GOAWAY and the RFC's error code; HPACK errors with
COMPRESSION_ERROR.
"""

import asyncio
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

from hpack import HPACKError

from server.hpack_cache import CachedDecoder
from server.http2_output import FLUSH_BYTES, Output
from server.http2_wire import (
    ACK,
    CANCEL,
    COMPRESSION_ERROR,
    CONTINUATION,
    DATA,
    DEFAULT_FRAME_SIZE,
    DEFAULT_WINDOW,
    ENABLE_PUSH,
    END_HEADERS,
    END_STREAM,
    ENHANCE_YOUR_CALM,
    FLOW_CONTROL_ERROR,
    FRAME_SIZE_ERROR,
    GOAWAY,
    HEADERS,
    INITIAL_WINDOW_SIZE,
    MAX_CONCURRENT_STREAMS,
    MAX_FRAME_SIZE,
    MAX_HEADER_LIST_SIZE,
    NO_ERROR,
    PADDED,
    PING,
    PREFACE,
    PRIORITY,
    PRIORITY_FLAG,
    PROTOCOL_ERROR,
    PUSH_PROMISE,
    REFUSED_STREAM,
    RST_STREAM,
    SETTINGS,
    STREAM_CLOSED,
    UINT32,
    WINDOW_UPDATE,
    H2ConnectionError,
    RequestHead,
    StreamError,
    frame,
    request_head,
)

MAX_WINDOW = 2**31 - 1
FRAME_SIZE = DEFAULT_FRAME_SIZE  # the largest frame we accept (we never raise it)
STREAM_WINDOW = 256 * 1024  # what each stream may send before we give window back
CONNECTION_WINDOW = 1024 * 1024
CONTROL_BURST = 1000.0  # control frames a connection may send at once...
CONTROL_PER_SECOND = 200.0  # ...and per second after that


class Stream:
    """One request stream: its body as it arrives, its windows, whether it is closed."""

    __slots__ = (
        "body",
        "closed",
        "deadline",
        "ended",
        "head",
        "id",
        "recv_window",
        "send_window",
        "task",
        "too_large",
        "unacked",
        "waiter",
    )  # fmt: skip

    def __init__(self, stream_id: int, send_window: int, deadline: float) -> None:
        self.id = stream_id
        self.body: bytearray | None = bytearray()
        self.ended = False  # the client's END_STREAM arrived
        self.too_large = False
        self.closed = False  # answered and done, or reset: nothing more is sent
        self.recv_window = STREAM_WINDOW
        self.send_window = send_window
        self.unacked = 0  # bytes taken in and not yet given back as window
        self.deadline = deadline  # the body must have ended by then
        self.waiter: asyncio.Future[None] | None = None
        self.task: asyncio.Task[None] | None = None
        self.head: RequestHead | None = None

    def wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


class BodyBudget:
    """Request-body bytes buffered by every connection of one listener, and their cap: the
    per-connection cap alone multiplies by the connection cap (hundreds of GB in theory)."""

    __slots__ = ("cap", "held")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.held = 0


class Owner(Protocol):
    """What a connection needs from the server that accepted it."""

    def admit(self, connection: "Connection") -> bool: ...
    def forget(self, connection: "Connection") -> None: ...
    def dispatch(self, connection: "Connection", stream: Stream) -> None: ...


@dataclass(frozen=True, slots=True)
class Limits:
    """A connection's bounds, from the settings."""

    max_header_bytes: int  # a request's fields, as HPACK counts them
    handshake_seconds: float
    body_limit: int  # a stream's body in bytes: the largest message and its 5-byte prefix
    body_deadline: float  # seconds for a stream's body to end
    max_streams: int = 100

    @property
    def buffer_cap(self) -> int:
        """Body bytes a connection may hold at once: 100 x (MAX_BODY_BYTES + 1 KiB)."""
        return self.max_streams * (self.body_limit + 1024)

    @property
    def max_block(self) -> int:
        """A header block's bytes while assembled, and its decoded size past which the
        connection is closed (a block past max_header_bytes only fails its own stream).
        Twice the limit leaves room for any encoding of a list within it."""
        return 2 * self.max_header_bytes + 4096


class Connection(asyncio.Protocol):
    """One HTTP/2 connection: the frames it reads, its streams and their bounds, the windows it
    grants; what it writes goes through `output`."""

    def __init__(
        self, owner: Owner, limits: Limits, clock: Callable[[], float],
        bodies: BodyBudget | None = None,
    ) -> None:  # fmt: skip
        self.owner = owner
        self.bodies = bodies if bodies is not None else BodyBudget(2**63)
        self.limits = limits
        self.clock = clock
        self.transport: asyncio.Transport | None = None
        self.output = Output(self)
        # The output's own method, not a wrapper: one attribute lookup on each call's path.
        self.answer = self.output.answer
        self._in = b""
        self.preface = False
        self.handshaken = False  # the client's preface and first SETTINGS are in
        self.started = clock()
        self.idle_since = self.started
        self.streams: dict[int, Stream] = {}
        self.last_stream = 0
        self._block: bytearray | None = None  # a header block being assembled
        self._block_stream = 0
        self._block_end_stream = False
        self.decoder = CachedDecoder(limits.max_block)
        self.recv_window = CONNECTION_WINDOW
        self._conn_unacked = 0
        self._send_high = DEFAULT_WINDOW  # the connection's send window's highest yet
        self.peer_initial_window = DEFAULT_WINDOW
        self.buffered = 0
        self._tokens = CONTROL_BURST
        self._tokens_at = self.started
        self.closing = False  # GOAWAY sent: no new streams
        self.lost = False
        self._forgotten = False  # connection_lost has run
        self._ending: set[asyncio.Task[None]] = set()  # calls of reset streams, cancelled

    # --- asyncio.Protocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        if not self.owner.admit(self):
            self.lost = True
            self.transport.abort()
            return
        self.output.transport = self.transport
        settings = b"".join(
            struct.pack(">HI", key, value)
            for key, value in (
                (MAX_CONCURRENT_STREAMS, self.limits.max_streams),
                (INITIAL_WINDOW_SIZE, STREAM_WINDOW),
                (MAX_HEADER_LIST_SIZE, self.limits.max_header_bytes),
                (ENABLE_PUSH, 0),
            )
        )
        self.transport.write(
            frame(SETTINGS, 0, 0, settings)
            + frame(WINDOW_UPDATE, 0, 0, UINT32.pack(CONNECTION_WINDOW - DEFAULT_WINDOW))
        )

    def connection_lost(self, exc: Exception | None) -> None:
        # fail() and the server's stop call this at once, so calls end now; asyncio calls it
        # again once the transport has closed: the second is a no-op.
        if self._forgotten:
            return
        self._forgotten = True
        self.lost = True
        for stream in self.streams.values():
            if stream.body:
                self._unbuffer(len(stream.body))
                stream.body = None
            stream.closed = True
            stream.wake()
            if stream.task is not None:
                stream.task.cancel()
        self.streams.clear()
        self.output.stop()
        self.owner.forget(self)

    def pause_writing(self) -> None:
        """The client is not reading: stop reading it too, so what it sends cannot make us
        queue answers, resets or acks without bound (the sweep closes it if this lasts)."""
        self.output.pause(self.clock())
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.output.resume()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
        if self._in and not self.output.handling and not self.lost:  # input kept while paused
            self.data_received(b"")

    def data_received(self, data: bytes) -> None:
        if self._in:
            data = self._in + data
            self._in = b""
        output = self.output
        output.handling = True
        try:
            self._frames(data)
            self._give_back()
        except H2ConnectionError as exc:
            self.fail(exc.code)
        finally:
            output.handling = False
            if output.queue or output.close_after:
                output.flush()

    # --- input ---

    def _frames(self, data: bytes) -> None:
        view = memoryview(data)
        output = self.output
        pos, end = 0, len(data)
        if not self.preface:
            if end < len(PREFACE):
                if PREFACE[:end] != data:
                    raise H2ConnectionError(PROTOCOL_ERROR, "not the HTTP/2 preface")
                self._in = data
                return
            if data[: len(PREFACE)] != PREFACE:
                raise H2ConnectionError(PROTOCOL_ERROR, "not the HTTP/2 preface")
            self.preface = True
            pos = len(PREFACE)
        while end - pos >= 9:
            if len(output.queue) >= FLUSH_BYTES:
                output.write_queued()  # may pause writing, checked next
            if output.paused:  # the rest waits for resume_writing
                break
            length = int.from_bytes(data[pos : pos + 3], "big")
            if length > FRAME_SIZE:
                raise H2ConnectionError(FRAME_SIZE_ERROR, "a frame larger than SETTINGS allow")
            if end - pos - 9 < length:
                break
            kind, flags = data[pos + 3], data[pos + 4]
            stream_id = int.from_bytes(data[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
            start = pos + 9
            pos = start + length
            if self.lost:
                return
            if not self.handshaken:
                if kind != SETTINGS or flags & ACK:
                    raise H2ConnectionError(PROTOCOL_ERROR, "the preface's SETTINGS is missing")
                self.handshaken = True
            if self._block is not None and (
                kind != CONTINUATION or stream_id != self._block_stream
            ):
                raise H2ConnectionError(PROTOCOL_ERROR, "a header block was interrupted")
            if kind == DATA:
                self._data(flags, stream_id, view[start:pos])
            elif kind == HEADERS:
                self._headers(flags, stream_id, data[start:pos])
            elif kind == CONTINUATION:
                self._continuation(flags, stream_id, data[start:pos])
            else:
                self._control(kind, flags, stream_id, data[start:pos])
        self._in = data[pos:]

    def _spend(self, units: float) -> None:
        """Take `units` from the control-frame budget; past it, the connection is closed."""
        now = self.clock()
        tokens = min(CONTROL_BURST, self._tokens + (now - self._tokens_at) * CONTROL_PER_SECOND)
        self._tokens_at = now
        if tokens < units:
            self._tokens = 0.0
            raise H2ConnectionError(ENHANCE_YOUR_CALM, "too many control frames")
        self._tokens = tokens - units

    def _control(self, kind: int, flags: int, stream_id: int, payload: bytes) -> None:
        length = len(payload)
        if kind == SETTINGS:
            self._spend(1 + length // 6)
            self._settings(flags, stream_id, payload)
        elif kind == PING:
            self._spend(1)
            if stream_id:
                raise H2ConnectionError(PROTOCOL_ERROR, "PING on a stream")
            if length != 8:
                raise H2ConnectionError(FRAME_SIZE_ERROR, "PING must be 8 bytes")
            if not flags & ACK:
                self.output.send(frame(PING, ACK, 0, payload))
        elif kind == WINDOW_UPDATE:
            self._window_update(stream_id, payload)
        elif kind == RST_STREAM:
            self._spend(1)
            if not stream_id:
                raise H2ConnectionError(PROTOCOL_ERROR, "RST_STREAM on the connection")
            if length != 4:
                raise H2ConnectionError(FRAME_SIZE_ERROR, "RST_STREAM must be 4 bytes")
            if stream_id > self.last_stream:
                raise H2ConnectionError(PROTOCOL_ERROR, "RST_STREAM on an idle stream")
            stream = self.streams.get(stream_id)
            if stream is not None:
                self.close_stream(stream)
                self._cancel(stream)
        elif kind == PRIORITY:
            self._spend(1)
            if not stream_id:
                raise H2ConnectionError(PROTOCOL_ERROR, "PRIORITY on the connection")
            if length != 5:
                self._reset(stream_id, FRAME_SIZE_ERROR)
        elif kind == GOAWAY:
            self._spend(1)
            if stream_id:
                raise H2ConnectionError(PROTOCOL_ERROR, "GOAWAY on a stream")
            self.closing = True  # the client opens no more streams; those open finish
            self._close_if_done()
        elif kind == PUSH_PROMISE:
            raise H2ConnectionError(PROTOCOL_ERROR, "a client cannot push")
        else:  # unknown types are ignored (section 4.1), but not for free
            self._spend(1)

    def _settings(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id:
            raise H2ConnectionError(PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & ACK:
            if payload:
                raise H2ConnectionError(FRAME_SIZE_ERROR, "a SETTINGS ACK with a payload")
            return
        if len(payload) % 6:
            raise H2ConnectionError(FRAME_SIZE_ERROR, "SETTINGS not a multiple of 6 bytes")
        window = None
        for i in range(0, len(payload), 6):
            key, value = struct.unpack_from(">HI", payload, i)
            if key == ENABLE_PUSH and value > 1:
                raise H2ConnectionError(PROTOCOL_ERROR, "ENABLE_PUSH must be 0 or 1")
            if key == INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    raise H2ConnectionError(FLOW_CONTROL_ERROR, "INITIAL_WINDOW_SIZE too large")
                window = value
            elif key == MAX_FRAME_SIZE:
                if not FRAME_SIZE <= value <= 2**24 - 1:
                    raise H2ConnectionError(PROTOCOL_ERROR, "MAX_FRAME_SIZE out of range")
                self.output.peer_max_frame = value
        if window is not None:  # one pass over the streams, however many entries came
            delta = window - self.peer_initial_window
            self.peer_initial_window = window
            for stream in self.streams.values():
                stream.send_window += delta
                if stream.send_window > MAX_WINDOW:
                    raise H2ConnectionError(FLOW_CONTROL_ERROR, "a stream window past 2^31-1")
            self.output.wake()
        self.output.send(frame(SETTINGS, ACK, 0))

    def _window_update(self, stream_id: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise H2ConnectionError(FRAME_SIZE_ERROR, "WINDOW_UPDATE must be 4 bytes")
        increment = int.from_bytes(payload, "big") & 0x7FFFFFFF
        if not stream_id:
            if not increment:
                raise H2ConnectionError(PROTOCOL_ERROR, "a WINDOW_UPDATE of 0")
            output = self.output
            output.send_window += increment
            if output.send_window > MAX_WINDOW:
                raise H2ConnectionError(FLOW_CONTROL_ERROR, "the connection window past 2^31-1")
            # Giving back window our answers used is free (a client downloading answers sends
            # many); only raising the window past its highest yet draws on the budget.
            if output.send_window > self._send_high:
                self._spend(1)
                self._send_high = output.send_window
            output.wake()
            return
        if stream_id > self.last_stream:
            raise H2ConnectionError(PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream")
        stream = self.streams.get(stream_id)
        if stream is None:  # closed: allowed for a while after (section 6.9), but budgeted
            self._spend(1)
            return
        if not increment:
            self._reset(stream_id, PROTOCOL_ERROR)
            return
        stream.send_window += increment
        if stream.send_window > MAX_WINDOW:
            self._reset(stream_id, FLOW_CONTROL_ERROR)
            return
        if stream.send_window > self.peer_initial_window:  # past what it was given: budgeted
            self._spend(1)
        self.output.wake()

    def _unpad(self, flags: int, payload: Any) -> Any:
        if not flags & PADDED:
            return payload
        if not payload:
            raise H2ConnectionError(FRAME_SIZE_ERROR, "a padded frame without its pad length")
        pad = payload[0]
        if pad >= len(payload):
            raise H2ConnectionError(PROTOCOL_ERROR, "padding past the frame")
        return payload[1 : len(payload) - pad]

    def _data(self, flags: int, stream_id: int, payload: memoryview) -> None:
        if not stream_id:
            raise H2ConnectionError(PROTOCOL_ERROR, "DATA on the connection")
        if stream_id > self.last_stream:
            raise H2ConnectionError(PROTOCOL_ERROR, "DATA on an idle stream")
        length = len(payload)  # padding counts against the windows too
        if length > self.recv_window:
            raise H2ConnectionError(FLOW_CONTROL_ERROR, "DATA past the connection window")
        self.recv_window -= length
        self._conn_unacked += length
        content = self._unpad(flags, payload)
        end = bool(flags & END_STREAM)
        stream = self.streams.get(stream_id)
        if not content and (not end or stream is None or stream.ended):
            self._spend(1)  # an empty frame that ends nothing is a control frame
        if stream is None or stream.ended:  # closed or reset: only the windows count
            if stream is not None:
                self._reset(stream_id, STREAM_CLOSED)
            return
        if length > stream.recv_window:
            self._reset(stream_id, FLOW_CONTROL_ERROR)
            return
        stream.recv_window -= length
        body = stream.body
        if body is not None:
            if len(body) + len(content) > self.limits.body_limit or (
                len(body) < 5 <= len(body) + len(content)
                and int.from_bytes((body + content)[1:5], "big") + 5 > self.limits.body_limit
            ):
                stream.too_large = True  # the call answers RESOURCE_EXHAUSTED, then resets
                self._unbuffer(len(body))
                stream.body = None
                stream.wake()
            elif self.bodies.held + len(content) > self.bodies.cap:
                self._reset(stream_id, ENHANCE_YOUR_CALM)  # the server holds too many bodies
                return
            else:
                body += content
                self.buffered += len(content)
                self.bodies.held += len(content)
                if self.buffered > self.limits.buffer_cap:
                    raise H2ConnectionError(ENHANCE_YOUR_CALM, "too many bodies buffered")
                stream.unacked += length
                if stream.unacked >= STREAM_WINDOW // 4 and not end:  # queued, one write
                    self.output.send(
                        frame(WINDOW_UPDATE, 0, stream.id, UINT32.pack(stream.unacked))
                    )
                    stream.recv_window += stream.unacked
                    stream.unacked = 0
        if end:
            stream.ended = True
            stream.wake()

    def _give_back(self) -> None:
        """The connection's WINDOW_UPDATE for what was buffered, once enough has been, so no
        sender waits (a stream's own goes as its DATA is buffered, in `_data`)."""
        if self._conn_unacked >= CONNECTION_WINDOW // 4:
            self.output.send(frame(WINDOW_UPDATE, 0, 0, UINT32.pack(self._conn_unacked)))
            self.recv_window += self._conn_unacked
            self._conn_unacked = 0

    def _headers(self, flags: int, stream_id: int, payload: bytes) -> None:
        if not stream_id or not stream_id & 1:
            raise H2ConnectionError(PROTOCOL_ERROR, "HEADERS on stream 0 or an even stream")
        payload = self._unpad(flags, payload)
        if flags & PRIORITY_FLAG:
            if len(payload) < 5:
                raise H2ConnectionError(FRAME_SIZE_ERROR, "HEADERS too short for its priority")
            payload = payload[5:]
        if not payload:
            self._spend(1)
        self._block_end_stream = bool(flags & END_STREAM)
        if flags & END_HEADERS:
            self._request(stream_id, bytes(payload))
        else:
            self._block = bytearray(payload)
            self._block_stream = stream_id

    def _continuation(self, flags: int, stream_id: int, payload: bytes) -> None:
        block = self._block
        if block is None:
            raise H2ConnectionError(PROTOCOL_ERROR, "CONTINUATION without HEADERS")
        if not payload:
            self._spend(1)
        block += payload
        if len(block) > self.limits.max_block:
            raise H2ConnectionError(ENHANCE_YOUR_CALM, "a header block too large")
        if flags & END_HEADERS:
            self._block = None
            self._request(stream_id, bytes(block))

    def _request(self, stream_id: int, block: bytes) -> None:
        """A complete header block: decoded (always, to keep HPACK in step), then a stream."""
        decoder = self.decoder
        head = decoder.lookup(block)
        if head is None:
            try:
                fields = decoder.decode(block)
            except HPACKError:
                raise H2ConnectionError(
                    COMPRESSION_ERROR, "a header block did not decode"
                ) from None
            try:
                head = request_head(fields)
            except StreamError as exc:
                head = exc
            decoder.store(block, fields, head)
        end_stream = self._block_end_stream
        if stream_id <= self.last_stream:  # trailers on an open stream, or a closed one's
            stream = self.streams.get(stream_id)
            if stream is None:
                raise H2ConnectionError(STREAM_CLOSED, "HEADERS on a closed stream")
            if not end_stream:
                self._reset(stream_id, PROTOCOL_ERROR)
            elif not stream.ended:
                stream.ended = True
                stream.wake()
            return
        self.last_stream = stream_id
        if self.closing or len(self.streams) + len(self._ending) >= self.limits.max_streams:
            self._reset(stream_id, REFUSED_STREAM)
            return
        if isinstance(head, StreamError):
            self._reset(stream_id, head.code)
            return
        now = self.clock()
        stream = Stream(stream_id, self.peer_initial_window, now + self.limits.body_deadline)
        stream.head = head
        stream.ended = end_stream
        self.streams[stream_id] = stream
        self.owner.dispatch(self, stream)

    # --- ending streams and the connection ---

    def _reset(self, stream_id: int, code: int) -> None:
        """RST_STREAM, and the stream closed: nothing more is sent on it."""
        stream = self.streams.get(stream_id)
        if stream is not None:
            self.close_stream(stream)
            self._cancel(stream)
        self.output.send(frame(RST_STREAM, 0, stream_id, UINT32.pack(code)))

    def _cancel(self, stream: Stream) -> None:
        """Cancel a reset stream's call; it counts toward max_streams until it has ended."""
        task = stream.task
        if task is not None and not task.done():
            task.cancel()
            self._ending.add(task)
            task.add_done_callback(self._ending.discard)

    def reset(self, stream: Stream, code: int) -> None:
        """Reset a stream (a call layer's timeout), unless it is closed already."""
        if not stream.closed:
            self._reset(stream.id, code)

    def close_stream(self, stream: Stream) -> None:
        """The stream is done (answered, or reset): nothing more is sent on it."""
        stream.closed = True
        stream.wake()
        if stream.body:
            self._unbuffer(len(stream.body))
        stream.body = None
        if self.streams.pop(stream.id, None) is not None and not self.streams:
            self.idle_since = self.clock()
            self._close_if_done()

    def _close_if_done(self) -> None:
        if self.closing and not self.streams and self.transport is not None:
            self.output.close()  # after what this input queued is written

    def fail(self, code: int) -> None:
        """A connection error: GOAWAY with `code`, then close."""
        if self.lost or self.transport is None:
            return
        self.output.end(frame(GOAWAY, 0, 0, UINT32.pack(self.last_stream) + UINT32.pack(code)))
        self.lost = True
        self.connection_lost(None)

    def goaway(self) -> None:
        """Stop taking streams (a drain): GOAWAY NO_ERROR; close once those open are done."""
        if self.closing or self.lost:
            return
        self.closing = True
        self.output.send(frame(GOAWAY, 0, 0, UINT32.pack(self.last_stream) + UINT32.pack(NO_ERROR)))
        self._close_if_done()

    def abort(self) -> None:
        """Close at once (the grace is over, or the connection is stuck)."""
        if self.transport is not None:
            self.transport.abort()

    async def body(self, stream: Stream) -> bytearray | None:
        """The stream's whole body once it has ended; None if it was too large."""
        while not stream.ended and not stream.too_large and not stream.closed:
            stream.waiter = asyncio.get_running_loop().create_future()
            await stream.waiter
        body = stream.body
        if body is None or stream.closed:
            return None
        self._unbuffer(len(body))
        stream.body = None
        return body

    def _unbuffer(self, size: int) -> None:
        self.buffered -= size
        self.bodies.held -= size

    def sweep(self, now: float, idle_seconds: float) -> None:
        """Close a connection past its handshake deadline or idle, reset late bodies."""
        if self.lost:
            return
        if self.output.stuck(now):
            self.fail(ENHANCE_YOUR_CALM)  # the client has not read for that long
            self.abort()
            return
        if not self.handshaken:
            if now - self.started > self.limits.handshake_seconds:
                self.abort()
            return
        if not self.streams:
            if now - self.idle_since > idle_seconds:
                self.goaway()
            return
        for stream in [s for s in self.streams.values() if not s.ended and now > s.deadline]:
            self._reset(stream.id, CANCEL)
