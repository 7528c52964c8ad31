"""server/http2.py and its output (server/http2_output.py) driven with bytes: frames in through
data_received, frames out of a fake transport. Malformed input, flow control, the bounds on what
a client can make a connection hold or cost (each a defect a review and an attack found in an
earlier version), header rules."""

import asyncio
import random
import struct
from typing import Any

import pytest
from hpack import Encoder

from server import http2, http2_output
from server import http2_wire as wire
from server.http2 import BodyBudget, Connection, Limits, Stream
from server.http2_wire import (
    ACK,
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    GOAWAY,
    HEADERS,
    PING,
    PREFACE,
    RST_STREAM,
    SETTINGS,
    WINDOW_UPDATE,
    frame,
)

Frame = tuple[int, int, int, bytes]
REQUEST = [(":method", "POST"), (":scheme", "http"), (":path", "/s/M"),
           (":authority", "x"), ("content-type", "application/grpc"), ("te", "trailers")]  # fmt: skip


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.out = bytearray()
        self.closed = False
        self.writes = 0
        self.reading = True

    def write(self, data: Any) -> None:
        assert not self.closed or not data, "written after close"
        self.out += data
        self.writes += 1

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def is_reading(self) -> bool:
        return self.reading

    def resume_reading(self) -> None:
        self.reading = True

    def frames(self) -> list[Frame]:
        """Every frame written since the last call."""
        data, self.out = bytes(self.out), bytearray()
        found = []
        while data:
            length = int.from_bytes(data[:3], "big")
            stream = int.from_bytes(data[5:9], "big") & 0x7FFFFFFF
            found.append((data[3], data[4], stream, data[9 : 9 + length]))
            data = data[9 + length :]
        return found


class Owner:
    def __init__(self) -> None:
        self.streams: list[Stream] = []
        self.forgotten = False
        self.forgets = 0

    def admit(self, connection: Connection) -> bool:
        return True

    def forget(self, connection: Connection) -> None:
        self.forgotten = True
        self.forgets += 1

    def dispatch(self, connection: Connection, stream: Stream) -> None:
        self.streams.append(stream)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Peer:
    """A connection with a fake transport, its owner and clock, and a client's encoder."""

    def __init__(
        self, handshake: bool = True, bodies: BodyBudget | None = None, **limits: Any
    ) -> None:
        self.owner = Owner()
        self.clock = Clock()
        values = {"max_header_bytes": 4096, "handshake_seconds": 1.0, "body_limit": 1000,
                  "body_deadline": 5.0, **limits}  # fmt: skip
        self.connection = Connection(self.owner, Limits(**values), self.clock, bodies)
        self.transport = FakeTransport()
        self.connection.connection_made(self.transport)
        self.encoder = Encoder()
        if handshake:
            self.send(PREFACE + frame(SETTINGS, 0, 0))
            self.transport.frames()

    def send(self, data: bytes) -> list[Frame]:
        self.connection.data_received(data)
        return self.transport.frames()

    def block(self, fields: list[tuple[str, str]] | None = None) -> bytes:
        return bytes(self.encoder.encode(fields or REQUEST))

    def open(self, stream: int, end: bool = False, fields: Any = None) -> list[Frame]:
        flags = END_HEADERS | (END_STREAM if end else 0)
        return self.send(frame(HEADERS, flags, stream, self.block(fields)))

    def goaway(self, frames: list[Frame]) -> int | None:
        """The error code of a GOAWAY among `frames` (the connection then closed)."""
        for kind, _, _, payload in frames:
            if kind == GOAWAY:
                assert self.transport.closed
                return int.from_bytes(payload[4:8], "big")
        return None


def resets(frames: list[Frame]) -> list[tuple[int, int]]:
    return [(s, int.from_bytes(p, "big")) for k, _, s, p in frames if k == RST_STREAM]


def settings_frame(*entries: tuple[int, int]) -> bytes:
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in entries))


@pytest.fixture
def peer() -> Peer:
    return Peer()


# --- the handshake and malformed frames ---


def test_the_server_opens_with_settings_and_acks_the_clients() -> None:
    peer = Peer(handshake=False)
    sent = peer.transport.frames()
    assert [f[0] for f in sent] == [SETTINGS, WINDOW_UPDATE]
    settings = dict(struct.iter_unpack(">HI", sent[0][3]))
    assert settings[wire.MAX_CONCURRENT_STREAMS] == 100
    got = peer.send(PREFACE[:10])  # the preface may come in pieces
    got += peer.send(PREFACE[10:] + frame(SETTINGS, 0, 0) + frame(PING, 0, 0, b"12345678"))
    assert [(k, fl) for k, fl, _, _ in got] == [(SETTINGS, ACK), (PING, ACK)]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", wire.PROTOCOL_ERROR),
        (PREFACE + frame(PING, 0, 0, b"12345678"), wire.PROTOCOL_ERROR),  # no SETTINGS first
        (PREFACE + frame(SETTINGS, 0, 0, b"\0" * 5), wire.FRAME_SIZE_ERROR),
        (PREFACE + frame(SETTINGS, 0, 0, b"\0" * 16385), wire.FRAME_SIZE_ERROR),
    ],
)
def test_a_bad_preface_or_first_frame_is_a_connection_error(data: bytes, code: int) -> None:
    peer = Peer(handshake=False)
    peer.transport.frames()
    assert peer.goaway(peer.send(data)) == code


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (frame(PING, 0, 0, b"1234"), wire.FRAME_SIZE_ERROR),
        (frame(PING, 0, 1, b"12345678"), wire.PROTOCOL_ERROR),
        (frame(SETTINGS, ACK, 0, b"\0" * 6), wire.FRAME_SIZE_ERROR),
        (frame(SETTINGS, 0, 1), wire.PROTOCOL_ERROR),
        (settings_frame((wire.ENABLE_PUSH, 2)), wire.PROTOCOL_ERROR),
        (settings_frame((wire.INITIAL_WINDOW_SIZE, 2**31)), wire.FLOW_CONTROL_ERROR),
        (settings_frame((wire.MAX_FRAME_SIZE, 100)), wire.PROTOCOL_ERROR),
        (frame(WINDOW_UPDATE, 0, 0, b"\0\0\0"), wire.FRAME_SIZE_ERROR),
        (frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0)), wire.PROTOCOL_ERROR),
        (frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 2**31 - 1)), wire.FLOW_CONTROL_ERROR),
        (frame(DATA, 0, 1, b"x"), wire.PROTOCOL_ERROR),  # an idle stream
        (frame(DATA, 0, 0, b"x"), wire.PROTOCOL_ERROR),
        (frame(HEADERS, END_HEADERS, 2, b"\x83"), wire.PROTOCOL_ERROR),  # an even stream
        (frame(HEADERS, END_HEADERS, 0, b"\x83"), wire.PROTOCOL_ERROR),
        (frame(RST_STREAM, 0, 5, b"\0\0\0\0"), wire.PROTOCOL_ERROR),  # an idle stream
        (frame(CONTINUATION, END_HEADERS, 1, b"\x83"), wire.PROTOCOL_ERROR),
        (frame(5, 0, 1, b"\0\0\0\2"), wire.PROTOCOL_ERROR),  # PUSH_PROMISE from a client
        (frame(HEADERS, END_HEADERS, 1, b"\xff\xff\xff\xff\x0f"), wire.COMPRESSION_ERROR),
        (frame(HEADERS, END_HEADERS, 1, b"\xbe"), wire.COMPRESSION_ERROR),  # no such index
        (frame(HEADERS, END_HEADERS, 1, b"\x3f\xe1\x3f"), wire.COMPRESSION_ERROR),  # 8192 > 4096
        (frame(HEADERS, END_HEADERS | wire.PADDED, 1, b"\x09\x83"), wire.PROTOCOL_ERROR),
    ],
)
def test_malformed_frames_end_the_connection_with_the_rfcs_code(data: bytes, code: int) -> None:
    peer = Peer()
    assert peer.goaway(peer.send(data)) == code


def test_a_connection_is_forgotten_once_though_asyncio_reports_its_loss_again(
    peer: Peer,
) -> None:
    assert peer.goaway(peer.send(frame(PING, 0, 1, b"12345678"))) == wire.PROTOCOL_ERROR
    peer.connection.connection_lost(None)  # asyncio's own call, after fail() made its own
    assert peer.owner.forgets == 1


def test_continuation_assembles_a_block_and_may_not_be_interleaved(peer: Peer) -> None:
    block = peer.block()
    peer.send(frame(HEADERS, END_STREAM, 1, block[:3]) + frame(CONTINUATION, 0, 1, block[3:6]))
    peer.send(frame(CONTINUATION, END_HEADERS, 1, block[6:]))
    assert [s.head.path for s in peer.owner.streams if s.head] == [b"/s/M"]
    interrupted = peer.send(frame(HEADERS, 0, 3, block[:3]) + frame(PING, 0, 0, b"12345678"))
    assert peer.goaway(interrupted) == wire.PROTOCOL_ERROR


def test_a_header_block_is_bounded_while_assembled() -> None:
    peer = Peer(max_header_bytes=1024)
    peer.send(frame(HEADERS, 0, 1, b"\x83"))
    piece = frame(CONTINUATION, 0, 1, b"\x83" * 1000)
    assert peer.goaway(peer.send(piece * 10)) == wire.ENHANCE_YOUR_CALM


# --- header fields (RFC 9113, section 8.2.1) ---


@pytest.mark.parametrize(
    "fields",
    [
        [*REQUEST, ("X-Upper", "1")],
        [*REQUEST, ("connection", "keep-alive")],
        [*REQUEST[:5], ("te", "gzip")],
        [*REQUEST, ("x-a", "one\r\ntwo")],
        [*REQUEST, ("x-a", "nul\x00")],
        [*REQUEST, ("x-a", " padded")],
        [("content-type", "application/grpc"), *REQUEST[:5]],  # pseudo after regular
        [*REQUEST, (":status", "200")],
        [(":method", "POST"), *REQUEST],  # repeated
        REQUEST[1:],  # no :method
    ],
)
def test_malformed_fields_reset_the_stream(peer: Peer, fields: list[tuple[str, str]]) -> None:
    assert resets(peer.open(1, fields=fields)) == [(1, wire.PROTOCOL_ERROR)]
    assert peer.owner.streams == []
    assert peer.open(3)[:1] == []
    assert len(peer.owner.streams) == 1


# --- flow control and bodies ---


def test_a_body_is_one_bytearray_however_many_frames_it_came_in() -> None:
    peer = Peer(body_limit=2000)
    peer.open(1)
    peer.send(frame(DATA, 0, 1, b"\0" + (1000).to_bytes(4, "big")))
    for _ in range(500):  # tiny DATA frames cost a few bytes each, not an object each
        peer.send(frame(DATA, 0, 1, b"ab"))
    stream = peer.owner.streams[0]
    assert isinstance(stream.body, bytearray)
    assert len(stream.body) == 1005
    assert peer.connection.buffered == 1005


def test_windows_are_given_back_as_bodies_are_buffered_not_when_calls_end() -> None:
    # Two large uploads in parallel on one connection: neither ends, both keep sending.
    peer = Peer(body_limit=4 * 1024 * 1024)
    peer.open(1)
    peer.open(3)
    chunk = b"x" * 16384
    given: dict[int, int] = {0: 0, 1: 0, 3: 0}
    window = {0: http2.CONNECTION_WINDOW, 1: http2.STREAM_WINDOW, 3: http2.STREAM_WINDOW}
    for i in range(128):  # 2 MiB each: past the connection's window twice over
        if i == 0:  # each body announces one message of 2 MiB
            chunk = b"\0" + (128 * 16384 - 5).to_bytes(4, "big") + b"x" * 16379
        else:
            chunk = b"x" * 16384
        for stream in (1, 3):
            assert window[0] >= len(chunk)
            assert window[stream] >= len(chunk)
            window[0] -= len(chunk)
            window[stream] -= len(chunk)
            for kind, _, sid, payload in peer.send(frame(DATA, 0, stream, chunk)):
                assert kind == WINDOW_UPDATE
                window[sid] += int.from_bytes(payload, "big")
                given[sid] += 1
    assert all(given.values())


def test_data_past_the_window_is_a_flow_control_error(peer: Peer) -> None:
    peer.open(1)
    chunk = frame(DATA, 0, 1, b"x" * 16384)
    # Nothing buffered is given back past the body limit, so the stream's window runs out.
    frames = peer.send(chunk * 17)
    assert resets(frames) == [(1, wire.FLOW_CONTROL_ERROR)] or peer.goaway(frames) in (
        wire.FLOW_CONTROL_ERROR,
    )


def test_buffered_bodies_are_capped_per_connection() -> None:
    peer = Peer(body_limit=20_000, max_streams=100)
    for stream in range(1, 200, 2):
        peer.open(stream)
    frames: list[Frame] = []
    for stream in range(1, 200, 2):  # 100 bodies just under the limit: within the cap
        frames += peer.send(frame(DATA, 0, stream, b"\0\0\0\x4e\x00" + b"x" * 16000))
    assert peer.goaway(frames) is None
    assert peer.connection.buffered == 100 * 16005
    assert peer.connection.buffered <= peer.connection.limits.buffer_cap


def test_buffered_bodies_are_capped_across_connections() -> None:
    """Past the listener's cap, a stream whose DATA would pass it is reset ENHANCE_YOUR_CALM
    (grpc clients see RESOURCE_EXHAUSTED); bytes given up make room again."""
    bodies = BodyBudget(1500)
    first, second = Peer(bodies=bodies), Peer(bodies=bodies)
    first.open(1)
    second.open(1)
    second.open(3)
    body = b"\0\0\0\x03\x1b" + b"x" * 795  # one message of 795 bytes
    assert first.send(frame(DATA, 0, 1, body)) == []
    assert resets(second.send(frame(DATA, 0, 1, body))) == [(1, wire.ENHANCE_YOUR_CALM)]
    assert bodies.held == 800
    first.send(frame(RST_STREAM, 0, 1, struct.pack(">I", wire.CANCEL)))
    assert bodies.held == 0
    assert second.send(frame(DATA, 0, 3, body)) == []
    assert bodies.held == 800


def test_a_body_past_its_limit_is_dropped_at_once(peer: Peer) -> None:
    peer.open(1)
    peer.send(frame(DATA, 0, 1, b"\0" + (5000).to_bytes(4, "big")))  # announces 5000 > 1000
    stream = peer.owner.streams[0]
    assert stream.too_large
    assert stream.body is None
    assert peer.connection.buffered == 0


def test_a_window_past_2_31_on_a_stream_resets_it(peer: Peer) -> None:
    peer.open(1)
    increment = struct.pack(">I", 2**31 - 1)
    assert resets(peer.send(frame(WINDOW_UPDATE, 0, 1, increment))) == [
        (1, wire.FLOW_CONTROL_ERROR)
    ]


def test_streams_past_max_streams_are_refused(peer: Peer) -> None:
    refused = []
    for stream in range(1, 204, 2):
        refused += resets(peer.open(stream))
    assert refused == [(201, wire.REFUSED_STREAM), (203, wire.REFUSED_STREAM)]


# --- answers ---


def test_an_answer_goes_out_whole_and_never_on_a_reset_stream(peer: Peer) -> None:
    peer.open(1, end=True)
    peer.open(3, end=True)
    first, second = peer.owner.streams
    assert peer.connection.answer(first, b"\x88", b"body", b"\x00") is None
    kinds = [(k, fl, s) for k, fl, s, _ in peer.transport.frames()]
    assert kinds == [(HEADERS, END_HEADERS, 1), (DATA, 0, 1), (HEADERS, END_HEADERS | 1, 1)]
    peer.send(frame(RST_STREAM, 0, 3, struct.pack(">I", wire.CANCEL)))
    assert peer.connection.answer(second, b"\x88", b"body", b"\x00") is None
    assert peer.transport.frames() == []


def test_an_answer_past_one_frame_goes_out_in_one_write(peer: Peer) -> None:
    peer.open(1, end=True)
    writes = peer.transport.writes

    async def run() -> None:
        pending = peer.connection.answer(peer.owner.streams[0], b"\x88", b"x" * 20_000, b"\0")
        assert pending is not None  # two DATA frames: the slow path, though no window is shut
        await pending

    asyncio.run(run())
    assert peer.transport.writes == writes + 1
    kinds = [(k, len(p)) for k, _, _, p in peer.transport.frames()]
    assert kinds == [(HEADERS, 1), (DATA, 16384), (DATA, 3616), (HEADERS, 1)]


def test_what_a_read_queued_is_written_before_a_goaway_closes(peer: Peer) -> None:
    frames = peer.send(frame(PING, 0, 0, b"12345678") + frame(GOAWAY, 0, 0, b"\0" * 8))
    assert [(k, fl) for k, fl, _, _ in frames] == [(PING, ACK)]
    assert peer.transport.closed


def test_an_answer_to_a_client_still_sending_ends_with_rst_stream_no_error(peer: Peer) -> None:
    peer.open(1)
    peer.connection.answer(peer.owner.streams[0], b"", b"", b"\x88")
    assert resets(peer.transport.frames()) == [(1, wire.NO_ERROR)]
    assert peer.send(frame(DATA, 0, 1, b"late")) == []  # ignored, not an error


def test_an_answer_blocked_on_the_stream_window_is_reset_in_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(http2_output, "ANSWER_TIMEOUT_SECONDS", 0.05)

    async def run() -> list[Frame]:
        peer = Peer()
        peer.send(settings_frame((wire.INITIAL_WINDOW_SIZE, 0)))
        peer.open(1, end=True)
        pending = peer.connection.answer(peer.owner.streams[0], b"\x88", b"x" * 10, b"\x00")
        assert pending is not None
        await pending
        return peer.transport.frames()

    frames = asyncio.run(run())
    assert resets(frames) == [(1, wire.CANCEL)]
    assert not any(k == DATA for k, *_ in frames)


def test_a_connection_stuck_on_its_own_window_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http2_output, "ANSWER_TIMEOUT_SECONDS", 0.05)

    async def run() -> Peer:
        peer = Peer()
        peer.open(1, end=True)
        peer.connection.output.send_window = 0  # the client never gives its connection window back
        pending = peer.connection.answer(peer.owner.streams[0], b"\x88", b"x" * 10, b"\x00")
        assert pending is not None
        await pending
        return peer

    peer = asyncio.run(run())
    assert peer.goaway(peer.transport.frames()) == wire.FLOW_CONTROL_ERROR


def test_an_answer_larger_than_the_window_waits_for_window_updates() -> None:
    async def run() -> list[Frame]:
        peer = Peer()
        peer.open(1, end=True)
        pending = peer.connection.answer(peer.owner.streams[0], b"\x88", b"x" * 100_000, b"\0")
        assert pending is not None
        task = asyncio.ensure_future(pending)
        await asyncio.sleep(0)
        frames = peer.transport.frames()
        peer.send(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 50_000)))
        peer.send(frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 50_000)))
        await task
        return frames + peer.transport.frames()

    frames = asyncio.run(run())
    assert sum(len(p) for k, _, _, p in frames if k == DATA) == 100_000
    assert frames[-1][:3] == (HEADERS, END_HEADERS | END_STREAM, 1)


def test_a_stream_the_server_resets_cancels_its_call_and_counts_until_it_ends() -> None:
    async def run() -> tuple[bool, list[tuple[int, int]], list[tuple[int, int]]]:
        peer = Peer(max_streams=1)
        peer.open(1)
        task = asyncio.get_running_loop().create_task(asyncio.sleep(60))
        peer.owner.streams[0].task = task
        peer.send(frame(wire.PRIORITY, 0, 1, b"\0"))  # a bad length: the server resets it
        refused = resets(peer.open(3))  # its call has not ended yet: still counted
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return task.cancelled(), refused, resets(peer.open(5))

    cancelled, refused, later = asyncio.run(run())
    assert cancelled
    assert refused == [(3, wire.REFUSED_STREAM)]
    assert later == []


def test_an_answer_while_writing_is_paused_goes_out_without_being_awaited() -> None:
    """Call sites may drop what `answer` returns: the answer is still sent once writing
    resumes (it used to be a coroutine that was never awaited, its stream never answered)."""

    async def run() -> list[Frame]:
        peer = Peer()
        peer.open(1, end=True)
        peer.connection.pause_writing()
        peer.connection.answer(peer.owner.streams[0], b"", b"", b"\x88")
        await asyncio.sleep(0)
        peer.connection.resume_writing()
        for _ in range(5):
            await asyncio.sleep(0)
        return peer.transport.frames()

    frames = asyncio.run(run())
    assert [(k, fl, s) for k, fl, s, _ in frames] == [(HEADERS, END_HEADERS | END_STREAM, 1)]


def test_reading_pauses_while_writing_is_paused(peer: Peer) -> None:
    """A client that does not read cannot make the server queue answers without bound: input
    is not read (nor what was read handled) until the transport's buffer drains."""
    peer.connection.pause_writing()
    assert not peer.transport.is_reading()
    assert peer.send(frame(PING, 0, 0, b"12345678")) == []  # kept, not answered yet
    peer.connection.resume_writing()
    assert peer.transport.is_reading()
    assert [k for k, *_ in peer.send(b"")] == [PING]


def test_a_connection_whose_writing_stays_paused_is_closed(peer: Peer) -> None:
    peer.connection.pause_writing()
    peer.connection.sweep(peer.clock.now + http2_output.ANSWER_TIMEOUT_SECONDS - 1, 1000)
    assert not peer.transport.closed
    peer.connection.sweep(peer.clock.now + http2_output.ANSWER_TIMEOUT_SECONDS + 1, 1000)
    assert peer.transport.closed


def test_a_late_body_is_reset_by_the_sweep(peer: Peer) -> None:
    peer.open(1)
    peer.connection.sweep(peer.clock.now + 4, 30)
    assert resets(peer.transport.frames()) == []
    peer.connection.sweep(peer.clock.now + 6, 30)  # past body_deadline
    assert resets(peer.transport.frames()) == [(1, wire.CANCEL)]
    assert not peer.connection.streams


def test_the_handshake_and_idleness_are_bounded() -> None:
    silent = Peer(handshake=False)
    silent.connection.sweep(silent.clock.now + 2, 30)
    assert silent.transport.closed
    idle = Peer()
    idle.connection.sweep(idle.clock.now + 31, 30)
    assert idle.goaway(idle.transport.frames()) == wire.NO_ERROR


# --- control-frame floods (the rapid reset class) ---


def test_a_settings_frame_of_thousands_of_entries_is_refused() -> None:
    peer = Peer(max_streams=100)
    for stream in range(1, 200, 2):
        peer.open(stream)
    entries = [(wire.INITIAL_WINDOW_SIZE, 65535)] * 2730
    sent = peer.send(settings_frame(*entries[:2000])[:16393])  # a frame's worth of them
    assert peer.goaway(sent) == wire.ENHANCE_YOUR_CALM


@pytest.mark.parametrize(
    "flood",
    [
        frame(PING, 0, 0, b"12345678"),
        settings_frame(),
        frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1)),
        frame(DATA, 0, 1, b""),
        frame(DATA, END_STREAM, 1, b""),  # after the first, on a stream already ended
        frame(wire.PRIORITY, 0, 1, b"\0\0\0\0\x10"),
        frame(0x20, 0, 0, b""),  # an unknown type
    ],
)
def test_control_frame_floods_end_in_enhance_your_calm(flood: bytes) -> None:
    peer = Peer()
    peer.open(1)
    peer.send(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1)))
    got = peer.send(flood * 2000)
    assert peer.goaway(got) == wire.ENHANCE_YOUR_CALM
    assert sum(1 for k, *_ in got if k == PING) <= http2.CONTROL_BURST


def test_rapid_reset_is_bounded_and_answers_earn_no_allowance() -> None:
    peer = Peer()
    code = None
    for stream in range(1, 6001, 2):
        frames = peer.open(stream, end=True)
        if peer.owner.streams:  # answered at once: must not refill the budget
            peer.connection.answer(peer.owner.streams.pop(), b"", b"", b"\x88")
        frames += peer.send(frame(RST_STREAM, 0, stream, struct.pack(">I", wire.CANCEL)))
        code = peer.goaway(frames)
        if code is not None:
            break
    assert code == wire.ENHANCE_YOUR_CALM
    assert stream < 2 * http2.CONTROL_BURST + 10


def test_window_given_back_for_answers_is_not_budgeted(peer: Peer) -> None:
    """A client downloading answers returns window all the time: that is no flood."""
    back = struct.pack(">I", 100)
    for stream in range(1, 6001, 2):
        peer.open(stream, end=True)
        answer = peer.connection.answer(peer.owner.streams[-1], b"\x88", b"x" * 100, b"\x00")
        assert answer is None
        peer.transport.frames()
        assert peer.goaway(peer.send(frame(WINDOW_UPDATE, 0, 0, back))) is None


def test_stream_window_floods_are_budgeted(peer: Peer) -> None:
    peer.open(1)
    got = peer.send(frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 1)) * 2000)
    assert peer.goaway(got) == wire.ENHANCE_YOUR_CALM


def test_the_budget_refills_with_time_only(peer: Peer) -> None:
    ping = frame(PING, 0, 0, b"12345678")
    peer.send(ping * 900)
    peer.clock.now += 1.0  # CONTROL_PER_SECOND more
    assert peer.goaway(peer.send(ping * 250)) is None
    assert peer.goaway(peer.send(ping * 100)) == wire.ENHANCE_YOUR_CALM


@pytest.mark.parametrize("seed", range(30))
def test_random_frames_end_in_an_answer_or_a_goaway_never_an_exception(seed: int) -> None:
    """Frames of every type with random flags, streams and payloads (some real requests among
    them): data_received must never raise, whatever arrives."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible fuzz, not a secret
    peer = Peer()
    for _ in range(2000):
        if peer.transport.closed:  # a connection error: go on with a new connection
            peer = Peer()
        roll = rng.random()
        if roll < 0.2:
            data = frame(HEADERS, rng.choice([4, 5]), rng.randrange(1, 40, 2), peer.block())
        else:
            kind = rng.randrange(0, 12)
            payload = rng.randbytes(rng.choice([0, 1, 4, 5, 6, 8, 9, 12, 30]))
            data = frame(kind, rng.randrange(256), rng.choice([0, 1, 2, 3, 5, 7, 2**31 - 1]),
                         payload)  # fmt: skip
        peer.connection.data_received(data)
        peer.transport.frames()
