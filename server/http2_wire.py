"""HTTP/2's wire format as the builtin gRPC transport uses it (RFC 9113, RFC 7541).

Frame types, flags, error codes and settings; frames as bytes; answers' header blocks as HPACK
literals without indexing (no encoder state to keep); and a request's header block checked
against RFC 9113, section 8.2.1. The connection that uses them is server/http2.py.
"""

import re
import struct
from dataclasses import dataclass
from typing import Any

from server.hpack_cache import fields_size

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE = 0, 1, 2, 3, 4, 5
PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 6, 7, 8, 9
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20
# Error codes (RFC 9113, section 7).
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0x0, 0x1, 0x2, 0x3
STREAM_CLOSED, FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL = 0x5, 0x6, 0x7, 0x8
COMPRESSION_ERROR, ENHANCE_YOUR_CALM = 0x9, 0xB
# Settings.
HEADER_TABLE_SIZE, ENABLE_PUSH, MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE = 1, 2, 3, 4
MAX_FRAME_SIZE, MAX_HEADER_LIST_SIZE = 5, 6
# INITIAL_WINDOW_SIZE's and MAX_FRAME_SIZE's values until SETTINGS change them (section 6.5.2).
DEFAULT_WINDOW, DEFAULT_FRAME_SIZE = 65_535, 16_384

UINT32 = struct.Struct(">I")  # stream ids, window increments, error codes
_FRAME_HEAD = struct.Struct(">IBI")  # length << 8 | type, flags, stream id

# RFC 9113, section 8.2.1: names are lowercase tokens, values hold no CR, LF or NUL and neither
# start nor end with white space; connection-specific fields are malformed.
_BAD_NAME = re.compile(rb"[^a-z0-9!#$%&'*+\-.^_`|~]")
_BAD_VALUE = re.compile(rb"[\r\n\x00]|^[ \t]|[ \t]$")
_CONNECTION_SPECIFIC = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade")
)
_REQUEST_PSEUDO = frozenset((b":method", b":scheme", b":path", b":authority"))


class H2ConnectionError(Exception):
    """A connection error (RFC 9113, section 5.4.1): GOAWAY with `code`, then close.
    (Named apart from the builtin ConnectionError, an OSError for a failed socket.)"""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class StreamError(Exception):
    """A stream error (section 5.4.2): RST_STREAM with `code`; the connection goes on."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    """One frame: 24-bit length, type, flags, stream id, payload."""
    return frame_head(len(payload), kind, flags, stream) + payload


def frame_head(length: int, kind: int, flags: int, stream: int) -> bytes:
    return _FRAME_HEAD.pack(length << 8 | kind, flags, stream)


def _integer(value: int, prefix_bits: int, first: int) -> bytes:
    """An HPACK integer (RFC 7541, section 5.1) whose first byte starts with `first`."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 128:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_literals(fields: list[tuple[bytes, bytes]]) -> bytes:
    """An HPACK block of literals without indexing, new names, no Huffman: no table state."""
    out = bytearray()
    for name, value in fields:
        out += b"\x00" + _integer(len(name), 7, 0) + name + _integer(len(value), 7, 0) + value
    return bytes(out)


@dataclass(slots=True)
class RequestHead:
    """A request's header block, checked: its pseudo-headers and the rest.

    Heads are cached with their header block (server/hpack_cache.py), so a repeated call gets
    the same object: `memo` keeps what the call layer makes of it, made once.
    """

    method: bytes
    path: bytes
    content_type: bytes
    fields: list[tuple[bytes, bytes]]  # the regular fields, in order
    size: int  # as HPACK counts a header list
    memo: Any = None


def request_head(fields: list[tuple[bytes, bytes]]) -> RequestHead:
    """The checked head of a request; StreamError(PROTOCOL_ERROR) if it is malformed."""
    pseudo: dict[bytes, bytes] = {}
    regular: list[tuple[bytes, bytes]] = []
    content_type = b""
    for name, value in fields:
        if _BAD_VALUE.search(value):
            raise StreamError(PROTOCOL_ERROR, "a field value holds CR, LF, NUL or edge spaces")
        if name[:1] == b":":
            if regular or name not in _REQUEST_PSEUDO or name in pseudo:
                raise StreamError(PROTOCOL_ERROR, "a misplaced, repeated or unknown pseudo-header")
            pseudo[name] = value
            continue
        if not name or _BAD_NAME.search(name):
            raise StreamError(PROTOCOL_ERROR, "a field name that is not a lowercase token")
        if name in _CONNECTION_SPECIFIC or (name == b"te" and value != b"trailers"):
            raise StreamError(PROTOCOL_ERROR, "a connection-specific field")
        if name == b"content-type":
            content_type = value
        regular.append((name, value))
    method, path = pseudo.get(b":method"), pseudo.get(b":path")
    if not method or not path or not pseudo.get(b":scheme"):
        raise StreamError(PROTOCOL_ERROR, ":method, :scheme and :path are required")
    return RequestHead(method, path, content_type, regular, fields_size(fields))
