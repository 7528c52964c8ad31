"""HTTP plumbing shared by the front ends: JSON responses and bounded body reads."""

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from server.errors import (
    INTERNAL_MESSAGE,
    STATUS_HEADERS,
    ClientClosedRequest,
    MalformedRequest,
    PayloadTooLarge,
    Protocol,
    ServerError,
    UnsupportedMediaType,
)

log = logging.getLogger("server")

_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
_JSON_TYPE = b"application/json"
_BINARY_TYPE = b"application/octet-stream"
_HEADER_LENGTH = b"inference-header-content-length"
# A client hanging up mid-body is its doing, not a server error: 499, no 500, no traceback.
_HUNG_UP = "the client closed the connection mid-body"


class JSONResponse(Response):
    """orjson-encoded JSON; numpy arrays and scalars serialize directly.

    The headers are built here in one list rather than through Starlette's generic
    `init_headers`, which is a measurable share of a one-row prediction.
    """

    media_type = "application/json"

    def __init__(
        self,
        content: Any,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        raw_headers: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        self.status_code = status_code
        self.background = None
        self.body = orjson.dumps(content, option=_JSON_OPTIONS)
        raw = [(b"content-length", b"%d" % len(self.body)), (b"content-type", _JSON_TYPE)]
        if headers:
            raw.extend(
                (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()
            )
        raw.extend(raw_headers)  # already lower-case bytes: the hot routes' headers
        self.raw_headers = raw


def _media_type(content_type: bytes) -> bytes:
    """The media type of a Content-Type header, lower-case; `+json` types count as JSON."""
    media_type = content_type.split(b";", 1)[0].strip().lower()
    return _JSON_TYPE if media_type.endswith(b"+json") else media_type


_JSON_ONLY = (_JSON_TYPE,)
_JSON_OR_BINARY = (_JSON_TYPE, _BINARY_TYPE)


async def read_json_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 415 unless JSON and with 413 past `limit` bytes.

    The limit is enforced while reading, so a client that lies about Content-Length or streams
    without one cannot make the server buffer more than `limit` bytes. Headers are read from the
    raw ASGI list in one pass: cheaper than building Starlette's Headers for three lookups.
    """
    body, _, _ = await _read_body(request, limit, _JSON_ONLY)
    return body


async def read_body(
    request: Request, limit: int, accepted: tuple[bytes, ...]
) -> tuple[bytes, bytes]:
    """The raw body and its media type, one of `accepted` (JSON when the client sent none)."""
    body, media_type, _ = await _read_body(request, limit, accepted)
    return body, media_type


async def read_inference_body(request: Request, limit: int) -> tuple[bytes, int | None]:
    """The raw body and, for the binary tensor data extension, the length of its JSON header.

    JSON or `application/octet-stream`; `Inference-Header-Content-Length` must be a whole number
    no larger than the body (400 otherwise).
    """
    body, _, header = await _read_body(request, limit, _JSON_OR_BINARY)
    if header is None:
        return body, None
    length = int(header) if header.isdigit() and len(header) <= 12 else 0
    if not 0 < length <= len(body):
        shown = header[:30].decode("latin-1")
        raise MalformedRequest(
            f"Inference-Header-Content-Length must be the JSON header's length in bytes "
            f"(1 to the body's {len(body)}), got {shown!r}"
        )
    return body, length


async def _read_body(
    request: Request, limit: int, accepted: tuple[bytes, ...]
) -> tuple[bytes, bytes, bytes | None]:
    content_type = encoding = length = header = None
    for name, value in request.scope["headers"]:
        if name == b"content-type":
            content_type = value
        elif name == b"content-length":
            length = value
        elif name == b"content-encoding":
            encoding = value
        elif name == _HEADER_LENGTH:
            header = value
    media_type = _JSON_TYPE
    # A Content-Type that is exactly an accepted media type (the usual case) skips the parsing.
    if content_type in accepted:
        media_type = content_type
    elif content_type is not None:
        media_type = _media_type(content_type)
        if media_type not in accepted:
            shown = content_type[:100].decode("latin-1")
            wanted = " or ".join(a.decode() for a in accepted)
            raise UnsupportedMediaType(f"Content-Type must be {wanted}, got {shown!r}")
    if encoding is not None and encoding.strip().lower() != b"identity":
        raise UnsupportedMediaType("compressed request bodies are not accepted")
    if length is not None and length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(f"the body is {int(length)} bytes; the limit is {limit}")
    receive = request.receive
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientClosedRequest(_HUNG_UP)
    body: bytes = message.get("body", b"")
    if len(body) > limit:
        raise PayloadTooLarge(f"the body exceeds the limit of {limit} bytes")
    if not message.get("more_body", False):
        return body, media_type, header
    chunks = [body]
    size = len(body)
    while message.get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientClosedRequest(_HUNG_UP)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks), media_type, header


class RawResponse(Response):
    """A body already encoded, with its headers built in one list (see JSONResponse)."""

    def __init__(
        self,
        body: bytes,
        media_type: bytes,
        raw_headers: Sequence[tuple[bytes, bytes]] = (),
        status_code: int = 200,
    ) -> None:
        self.status_code = status_code
        self.background = None
        self.body = body
        self.raw_headers = [
            (b"content-length", b"%d" % len(body)),
            (b"content-type", media_type),
            *raw_headers,
        ]


def error_response(
    protocol: Protocol, exc: Exception, request_id: bytes = b"", path: str = ""
) -> JSONResponse:
    """The one mapping from exceptions to answers, in the protocol's error shape.

    Our own errors carry their status and a message safe to show; Starlette's HTTPException
    (404, 405 with its Allow header) keeps its status; anything else is logged and answered 500.
    """
    headers: Mapping[str, str] | None = None
    if isinstance(exc, ServerError):
        status, message = exc.status_code, exc.detail
    elif isinstance(exc, HTTPException):
        status, message, headers = exc.status_code, str(exc.detail), exc.headers
    else:
        log.error(
            "unhandled error",
            exc_info=exc,
            extra={"request_id": request_id.decode(), "path": path[:200]},
        )
        status, message = 500, INTERNAL_MESSAGE
    extra = STATUS_HEADERS.get(status)
    if extra:
        headers = {**extra, **(headers or {})}
    return JSONResponse(
        protocol.error(message, status), status_code=protocol.status(status), headers=headers
    )
