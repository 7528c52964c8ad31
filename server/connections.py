"""Limits on connections, below Starlette: header size, header deadline, and how many stay open.

uvicorn's httptools protocol enforces none of them. A request head (request line and headers)
could grow without bound (httptools buffers it until it is complete), a connection that never
sends a complete head stayed open for good (uvicorn's keep-alive timeout starts only after an
answer), and enough such connections exhausted the file descriptors, after which probes were
reset and the registry could not open its database.

`GuardedHttpToolsProtocol` adds, per connection:
- a head larger than MAX_HEADER_BYTES is answered 431 and the connection closed, before the
  parser buffers more;
- a new connection must deliver its first head, and any later head must be complete, within
  HEADER_TIMEOUT_SECONDS of its first byte, else the connection is closed (408 if part of a
  head came); an idle kept-alive connection is uvicorn's (its keep-alive timeout closes it);
and `ConnectionGuard` keeps the open connections at most MAX_CONNECTIONS, less than the
descriptor limit: a connection beyond that evicts one that is not serving a request (the one
that has waited longest for a head, else an idle kept-alive one), so a new client (a kubelet
probe, say) is served rather than refused. With gRPC on, HTTP gets half of MAX_CONNECTIONS and
gRPC the other half (server/grpc_limits.py), so neither port can take the other's descriptors.

The request path pays a few comparisons: a head that arrives in one read is neither counted nor
timed; one split across reads is counted and put on a waiting list (a dict, in deadline order),
and a single timer per server, set for the oldest deadline, enforces them all.
"""

import asyncio
import logging
import resource
import time
from typing import Any, cast

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from server.metrics import Metrics

log = logging.getLogger("server.connections")
_HEAD_END = b"\r\n\r\n"
_LOG_EVERY_SECONDS = 10.0


def descriptor_limit() -> int:
    """The process's soft limit on open files."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def connection_cap(configured: int, descriptors: int, listeners: int = 1) -> int:
    """Connections allowed open on each of `listeners` (HTTP, and gRPC when on): an equal share
    of the setting, always leaving descriptors for everything else (the model files, the
    registry's database or HTTP connections, logs)."""
    reserve = max(64, descriptors // 20)
    return max(1, min(configured, descriptors - reserve) // listeners)


def _error(status: bytes, detail: str) -> bytes:
    body = orjson.dumps({"detail": detail})
    return b"".join(
        [
            b"HTTP/1.1 ", status, b"\r\ncontent-type: application/json\r\n",
            b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body), body,
        ]
    )  # fmt: skip


class ConnectionGuard:
    """What every connection of one server shares: the limits, the waiting list, the counts."""

    def __init__(
        self,
        max_header_bytes: int,
        header_timeout: float,
        max_connections: int,
        metrics: Metrics | None = None,
    ) -> None:
        self.max_header_bytes = max_header_bytes
        self.header_timeout = header_timeout
        self.max_connections = max_connections
        self.open = 0
        # Connections waiting for a request head, oldest first: all share one timeout, so the
        # order of insertion is the order of their deadlines.
        self.waiting: dict[GuardedHttpToolsProtocol, float] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._dropped = metrics.connections_dropped if metrics is not None else None
        if metrics is not None:
            metrics.connections_open.set_function(lambda: self.open)
        self._unlogged = {"evicted": 0, "refused": 0}
        self._logged_at = 0.0
        self.too_large = _error(
            b"431 Request Header Fields Too Large",
            f"the request line and headers exceed {max_header_bytes} bytes",
        )
        self.too_slow = _error(
            b"408 Request Timeout",
            f"the request headers did not arrive within {header_timeout:g} seconds",
        )

    def protocol_class(self) -> type["GuardedHttpToolsProtocol"]:
        """The protocol class to give uvicorn (`Config(http=...)`), bound to this guard."""
        return type("BoundGuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {"guard": self})

    def count(self, reason: str) -> None:
        if self._dropped is not None:
            self._dropped.labels(reason).inc()

    # --- the waiting list and its deadlines ---

    def wait(self, connection: "GuardedHttpToolsProtocol", loop: asyncio.AbstractEventLoop) -> None:
        """From now on the connection must deliver a complete head within the timeout."""
        deadline = loop.time() + self.header_timeout
        self.waiting.pop(connection, None)  # to the end: the newest deadline
        self.waiting[connection] = deadline
        if self._timer is None:
            self._timer = loop.call_at(deadline, self._expire, loop)

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        now = loop.time()
        while self.waiting:
            connection, deadline = next(iter(self.waiting.items()))
            if deadline > now:
                self._timer = loop.call_at(deadline, self._expire, loop)
                return
            del self.waiting[connection]
            connection._waiting = False
            connection.too_slow()

    # --- the cap ---

    def admit(self, connection: "GuardedHttpToolsProtocol") -> bool:
        """Count a new connection; past the cap, evict one that is not serving (or refuse).

        First the one that has waited longest for a request head, else any idle keep-alive
        connection (those are not on the waiting list: uvicorn's keep-alive timeout ends them).
        """
        self.open += 1
        if self.open <= self.max_connections:
            return True
        victim = next((c for c in self.waiting if c is not connection), None)
        if victim is None:
            idle = (c for c in connection.connections if _idle(c, connection))
            victim = cast(GuardedHttpToolsProtocol | None, next(idle, None))
        if victim is None:
            self._note("refused")
            return False
        self.waiting.pop(victim, None)
        victim.evict()
        self._note("evicted")
        return True

    def _note(self, what: str) -> None:
        self.count(what)
        self._unlogged[what] += 1
        now = time.monotonic()
        if now - self._logged_at >= _LOG_EVERY_SECONDS:  # at most one line every ten seconds
            log.warning(
                "connection limit reached: closing idle connections to admit new ones",
                extra={"limit": self.max_connections, "open": self.open, **self._unlogged},
            )
            self._unlogged = dict.fromkeys(self._unlogged, 0)
            self._logged_at = now


def _idle(connection: Any, newcomer: "GuardedHttpToolsProtocol") -> bool:
    """Between requests on a kept-alive connection, with nothing of the next one received."""
    cycle = connection.cycle
    return (
        connection is not newcomer
        and isinstance(connection, GuardedHttpToolsProtocol)
        and cycle is not None
        and cycle.response_complete
        and not connection.pipeline
        and connection._in_head
        and not connection._head_bytes
    )


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bounded, timed request head; see the module."""

    guard: ConnectionGuard  # set by ConnectionGuard.protocol_class

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._max_head = self.guard.max_header_bytes
        self._in_head = True  # the next bytes belong to a request head
        self._head_bytes = 0  # bytes of the current head received in earlier reads
        self._completed = 0  # heads and messages completed: did a read finish one?
        self._tail = b""  # the last bytes of a head spanning reads, to find its end
        self._waiting = False  # on the guard's waiting list, with a deadline

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if not self.guard.admit(self):
            transport.abort()
            return
        self._waiting = True
        self.guard.wait(self, self.loop)

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.open -= 1
        self.guard.waiting.pop(self, None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head and self._head_bytes + len(data) > self._max_head:
            room = max(0, self._max_head - self._head_bytes)
            if _HEAD_END not in self._tail + data[:room]:
                self._refuse(self.guard.too_large, "header_too_large")
                return
        completed = self._completed
        super().data_received(data)
        if self._in_head and completed == self._completed:  # all of it part of one head
            self._incomplete_head(data)
        # A read that ended a request (its head or its body) and began the next head counts
        # nothing for that head: its size is then known to within one read (uvloop reads up to
        # 256 KiB), and its deadline starts with its next read.

    def _incomplete_head(self, data: bytes) -> None:
        """Part of a head arrived: count it, and start its deadline if not already running.

        A head that arrives in one read, the usual case, never comes here: the request path
        pays for the deadline only when a head is split across reads.
        """
        self._head_bytes += len(data)
        self._tail = data[-3:]
        if not self._waiting:
            self._waiting = True
            self.guard.wait(self, self.loop)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._completed += 1
        if self._head_bytes:
            self._head_bytes = 0
            self._tail = b""
        if self._waiting:
            self._waiting = False
            self.guard.waiting.pop(self, None)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True
        self._completed += 1

    def too_slow(self) -> None:
        """The head deadline passed: 408 if part of a head came, then close."""
        if self.transport.is_closing():
            return
        if self._head_bytes:
            self.transport.write(self.guard.too_slow)
        self.guard.count("header_timeout")
        self.transport.close()

    def evict(self) -> None:
        self._waiting = False
        if not self.transport.is_closing():
            self.transport.close()

    def _refuse(self, answer: bytes, reason: str) -> None:
        self.guard.count(reason)
        self._waiting = False
        self.guard.waiting.pop(self, None)
        if not self.transport.is_closing():
            self.transport.write(answer)
            self.transport.close()
