"""The gRPC port on our own HTTP/2 layer (GRPC_TRANSPORT=builtin): the calls over its streams.

server/http2.py carries frames; this module listens, caps connections, turns a stream into a
call of server/grpc_calls.py (the same methods, checks and metrics as the grpcio transport) and
its outcome into gRPC's answer: HEADERS, one length-prefixed message in DATA, trailers with
grpc-status (and grpc-message, percent-encoded), or trailers alone for an error. The limits are
grpc_limits.py's: half the connection cap, the handshake within HEADER_TIMEOUT_SECONDS, idle
connections closed after IDLE_SECONDS, 100 streams per connection, MAX_CONCURRENCY +
UNSHED_RPCS calls at once (counted when a call is dispatched), a call's metadata within
MAX_HEADER_BYTES and its message within MAX_BODY_BYTES, request bodies buffered across all
connections within grpc_limits.body_buffer_cap (64 x MAX_BODY_BYTES). On stop, GOAWAY: calls in flight get
SHUTDOWN_GRACE_SECONDS.

Every call is answered, whatever fails inside it (a bug is INTERNAL), unless its stream was
reset or its connection lost: then nothing is sent.
"""

import asyncio
import logging
import re
import socket

from server import grpc_limits
from server.errors import INTERNAL_MESSAGE, MalformedRequest, ServerError
from server.grpc_calls import (
    DEADLINE_EXCEEDED,
    INTERNAL,
    OK,
    RESOURCE_EXHAUSTED,
    UNIMPLEMENTED,
    CallMetadata,
    FrontEnd,
    Method,
    Outcome,
)
from server.http2 import BodyBudget, Connection, Limits, Stream
from server.http2_wire import RequestHead, encode_literals

log = logging.getLogger("server.grpc")
SWEEP_SECONDS = 0.5
# Without BODY_TIMEOUT_SECONDS a stream's body still has to end within this.
BODY_DEADLINE_SECONDS = 31.0
_TIMEOUT = re.compile(rb"([0-9]{1,8})([HMSmun])")  # ASCII digits only, as gRPC's spec says
_UNITS = {b"H": 3600.0, b"M": 60.0, b"S": 1.0, b"m": 1e-3, b"u": 1e-6, b"n": 1e-9}
# Static table index 8 (:status 200), then content-type as a literal with indexed name 31.
_HEAD = b"\x88\x0f\x10\x10application/grpc"
_OK_TRAILERS = encode_literals([(b"grpc-status", b"0")])
_SAFE = frozenset(range(0x20, 0x7F)) - {ord("%")}


class Unimplemented(ServerError):
    """Something gRPC allows that this server does not do (UNIMPLEMENTED)."""

    status_code = 501


def grpc_timeout(value: bytes) -> float | None:
    """Seconds of a `grpc-timeout` value, or None if it is not one."""
    match = _TIMEOUT.fullmatch(value)
    if match is None:
        return None
    return int(match[1]) * _UNITS[match[2]]


def percent_encoded(message: str) -> bytes:
    """grpc-message's encoding: UTF-8, bytes outside printable ASCII and `%` as %XX."""
    return b"".join(
        bytes((b,)) if b in _SAFE else b"%%%02X" % b for b in message.encode("utf-8", "replace")
    )


def message_of(body: bytearray) -> bytes:
    """The one message of a unary call's body (5-byte prefix, then the message)."""
    if not body:  # the transport knows this from a body too large (None): say which
        raise MalformedRequest("the call ended with no request message")
    if len(body) < 5:
        raise MalformedRequest("the request message is cut short")
    if body[0]:
        raise Unimplemented("compressed messages are not supported; send them uncompressed")
    if int.from_bytes(body[1:5], "big") != len(body) - 5:
        raise MalformedRequest("the request body is not one whole message")
    return bytes(body[5:])


_REQUEST_ID_TRAILER = encode_literals([(b"x-request-id", b"")])[:-1]  # its value goes after


def _ok_trailers(extra: list[tuple[str, str]]) -> bytes:
    """grpc-status 0 and the extra trailers: the common one (a request id) without a loop."""
    if len(extra) == 1 and extra[0][0] == "x-request-id" and len(extra[0][1]) < 127:
        value = extra[0][1].encode("latin-1", "replace")
        return _OK_TRAILERS + _REQUEST_ID_TRAILER + bytes((len(value),)) + value
    return _trailers(OK, "", extra)


def _trailers(code: int, message: str, extra: list[tuple[str, str]]) -> bytes:
    fields = [(b"grpc-status", b"%d" % code)]
    if message:
        fields.append((b"grpc-message", percent_encoded(message)))
    fields += [(k.encode("latin-1"), v.encode("latin-1", "replace")) for k, v in extra]
    return encode_literals(fields)


def dual_stack_socket(port: int) -> socket.socket:
    """A listening socket on every address, IPv6 and IPv4 alike."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(("::", port))
        sock.listen(socket.SOMAXCONN)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class BuiltinFrontEnd(FrontEnd):
    """The gRPC server on server/http2.py, started and stopped with the app."""

    def setup(self) -> None:
        settings = self.settings
        body_timeout = settings.body_timeout_seconds
        self.limits = Limits(
            max_header_bytes=settings.max_header_bytes,
            handshake_seconds=settings.header_timeout_seconds,
            body_limit=settings.max_body_bytes + 5,
            body_deadline=body_timeout + 1 if body_timeout else BODY_DEADLINE_SECONDS,
            max_streams=grpc_limits.STREAMS_PER_CONNECTION,
        )
        self.bodies = BodyBudget(grpc_limits.body_buffer_cap(settings))  # shared by connections
        self.max_connections = grpc_limits.max_connections(settings)
        self.max_rpcs = grpc_limits.max_rpcs(settings) or 0
        self.running = 0  # calls dispatched and not yet ended, on every connection
        self.connections: set[Connection] = set()
        self.server: asyncio.Server | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._empty: asyncio.Event | None = None

    @property
    def listening(self) -> bool:
        return self.server is not None

    async def start(self) -> None:
        settings = self.settings
        loop = asyncio.get_running_loop()
        host = settings.host.strip("[]") or None
        address = grpc_limits.listen_address(settings.host, settings.grpc_port)
        try:
            if host == "::":  # both families, as grpc core listens (asyncio's is IPv6 only)
                self.server = await loop.create_server(
                    lambda: Connection(self, self.limits, loop.time, self.bodies),
                    sock=dual_stack_socket(settings.grpc_port),
                )
            else:
                self.server = await loop.create_server(
                    lambda: Connection(self, self.limits, loop.time, self.bodies),
                    host,
                    settings.grpc_port,
                )
        except OSError as exc:
            raise OSError(
                f"cannot listen for gRPC on {address} ({exc.strerror or exc}): choose another "
                "GRPC_PORT or HOST"
            ) from None
        self.port = self.server.sockets[0].getsockname()[1]
        self._sweeper = loop.call_later(SWEEP_SECONDS, self._sweep)
        log.info("gRPC listening", extra={"port": self.port, "transport": "builtin"})

    async def _stop(self) -> None:
        assert self.server is not None
        self.server.close()
        self._empty = asyncio.Event()
        for connection in list(self.connections):
            connection.goaway()
        if self.connections:
            try:
                async with asyncio.timeout(self.settings.shutdown_grace_seconds):
                    await self._empty.wait()
            except TimeoutError:
                pass
        for connection in list(self.connections):
            connection.abort()
            connection.connection_lost(None)  # its calls are cancelled now, not at the next turn
        if self._sweeper is not None:
            self._sweeper.cancel()

    def _sweep(self) -> None:
        now = asyncio.get_running_loop().time()
        idle = grpc_limits.IDLE_SECONDS  # read each time: tests shorten it
        for connection in list(self.connections):
            connection.sweep(now, idle)
        self._sweeper = asyncio.get_running_loop().call_later(SWEEP_SECONDS, self._sweep)

    # --- what connections ask of their server ---

    def admit(self, connection: Connection) -> bool:
        if len(self.connections) >= self.max_connections or self._stopped is not None:
            return False
        self.connections.add(connection)
        return True

    def forget(self, connection: Connection) -> None:
        self.connections.discard(connection)
        if not self.connections and self._empty is not None:
            self._empty.set()

    def dispatch(self, connection: Connection, stream: Stream) -> None:
        """A new stream's headers are in: start its call, or answer it at once."""
        head = stream.head
        assert head is not None
        if head.method != b"POST" or not head.content_type.startswith(b"application/grpc"):
            # Not gRPC (its spec: 415 for a wrong content-type); HTTP status only.
            status = b"405" if head.method != b"POST" else b"415"
            connection.answer(stream, b"", b"", encode_literals([(b":status", status)]))
            return
        call = head.memo
        if call is None:  # made once per distinct header block (see RequestHead.memo)
            call = head.memo = self._call_of(head)
        method, refusal, timeout, authorization, request_id = call
        if refusal is None and self.max_rpcs and self.running >= self.max_rpcs:
            refusal = Outcome(RESOURCE_EXHAUSTED, "too many calls at once")
        if refusal is not None or method is None:
            assert refusal is not None
            self._send(connection, stream, refusal, [])
            return
        metadata = CallMetadata(authorization, request_id)
        # Counted now, before the task runs, so the cap cannot be passed; uncounted when the
        # task is done, however: a task cancelled before its first step never runs `_call`.
        self.running += 1
        task = asyncio.get_running_loop().create_task(
            self._call(connection, stream, method, metadata, timeout)
        )
        task.add_done_callback(self._ended)
        stream.task = task

    def _ended(self, task: "asyncio.Task[None]") -> None:
        self.running -= 1

    def _call_of(
        self, head: RequestHead
    ) -> tuple[Method | None, Outcome | None, float | None, str, str | None]:
        """What a request head means for its call: its method (or why it is refused at once),
        its grpc-timeout, and the metadata the calls read."""
        parsed = CallMetadata()
        timeout = None
        for name, value in head.fields:
            if name == b"grpc-timeout":
                timeout = grpc_timeout(value)  # one that does not parse is ignored
            elif name in (b"authorization", b"x-request-id"):
                parsed.take(name.decode(), value.decode("latin-1"))
        method = self.methods.get(head.path.decode("latin-1"))
        refusal = None
        if head.size > self.limits.max_header_bytes:
            refusal = Outcome(RESOURCE_EXHAUSTED, "the call's metadata is past MAX_HEADER_BYTES")
        elif method is None:
            refusal = Outcome(UNIMPLEMENTED, f"no method {head.path[:200].decode('latin-1')!r}")
        return method, refusal, timeout, parsed.authorization, parsed.request_id

    async def _call(
        self, connection: Connection, stream: Stream, method: Method, metadata: CallMetadata,
        timeout: float | None,
    ) -> None:  # fmt: skip
        try:

            async def read() -> bytes | None:
                body = await connection.body(stream)
                return None if body is None else message_of(body)

            waits = not (stream.ended or stream.too_large)  # most calls arrive whole
            if timeout is None:
                outcome = await self.calls.run(method, metadata, read, waits)
            else:
                try:
                    async with asyncio.timeout(timeout):
                        outcome = await self.calls.run(method, metadata, read, waits)
                except TimeoutError:
                    outcome = Outcome(DEADLINE_EXCEEDED, "the call's grpc-timeout passed")
            pending = self._send(connection, stream, outcome, metadata.trailers)
            if pending is not None:
                await pending
        except asyncio.CancelledError:  # reset by the client, its connection lost, or stopped
            pass
        except Exception as exc:  # a bug here: the call is still answered
            log.error("unhandled error", exc_info=exc, extra={"rpc": method.path})
            self._send(connection, stream, Outcome(INTERNAL, INTERNAL_MESSAGE), [])

    def _send(
        self, connection: Connection, stream: Stream, outcome: Outcome,
        trailers: list[tuple[str, str]],
    ) -> "asyncio.Task[None] | None":  # fmt: skip
        """The outcome as gRPC's answer: sent, or being sent by the task returned (which the
        connection holds, so an early refusal need not wait for it)."""
        payload = outcome.payload
        if outcome.code == OK and payload is not None:
            data = b"\x00" + len(payload).to_bytes(4, "big") + payload
            tail = _ok_trailers(trailers) if trailers else _OK_TRAILERS
            return connection.answer(stream, _HEAD, data, tail)
        return connection.answer(
            stream, b"", b"", _HEAD + _trailers(outcome.code, outcome.message, trailers)
        )
