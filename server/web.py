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
    PayloadTooLarge,
    Protocol,
    ServerError,
    UnsupportedMediaType,
)

log = logging.getLogger("server")

_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
_JSON_TYPE = b"application/json"
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


def _is_json(content_type: bytes) -> bool:
    media_type = content_type.split(b";", 1)[0].strip().lower()
    return media_type == _JSON_TYPE or media_type.endswith(b"+json")


async def read_json_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 415 unless JSON and with 413 past `limit` bytes.

    The limit is enforced while reading, so a client that lies about Content-Length or streams
    without one cannot make the server buffer more than `limit` bytes. Headers are read from the
    raw ASGI list in one pass: cheaper than building Starlette's Headers for three lookups.
    """
    content_type = encoding = length = None
    for name, value in request.scope["headers"]:
        if name == b"content-type":
            content_type = value
        elif name == b"content-length":
            length = value
        elif name == b"content-encoding":
            encoding = value
    if content_type is not None and not _is_json(content_type):
        shown = content_type[:100].decode("latin-1")
        raise UnsupportedMediaType(f"Content-Type must be application/json, got {shown!r}")
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
        return body
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
    return b"".join(chunks)


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
    return JSONResponse(protocol.error(message), status_code=status, headers=headers)
