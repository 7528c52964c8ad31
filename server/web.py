"""HTTP plumbing shared by the front ends: JSON responses and bounded body reads."""

from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from server.errors import ClientClosedRequest, PayloadTooLarge, UnsupportedMediaType

_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


class JSONResponse(Response):
    """orjson-encoded JSON; numpy arrays and scalars serialize directly."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=_JSON_OPTIONS)


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


async def read_json_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 415 unless JSON and with 413 past `limit` bytes.

    The limit is enforced while reading, so a client that lies about Content-Length or streams
    without one cannot make the server buffer more than `limit` bytes.
    """
    headers = request.headers
    content_type = headers.get("content-type")
    if content_type is not None and not _is_json(content_type):
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, got {content_type[:100]!r}"
        )
    if headers.get("content-encoding", "identity").lower() != "identity":
        raise UnsupportedMediaType("compressed request bodies are not accepted")
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is {declared} bytes; the limit is {limit}")
    chunks = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"the body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:  # the client's doing, not a server error: no 500, no traceback
        raise ClientClosedRequest("the client closed the connection mid-body") from None
    return b"".join(chunks)
