"""HTTP plumbing: JSON responses, bounded body reads, and the exception-to-answer mapping."""

import asyncio
import logging

import numpy as np
import pytest
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import Message

from server.errors import (
    OIP,
    SIMPLE,
    ClientClosedRequest,
    PayloadTooLarge,
    RequestTimeout,
    Unauthorized,
    UnsupportedMediaType,
)
from server.web import JSONResponse, error_response, read_json_body


def test_json_response_serialises_numpy_and_sets_its_headers() -> None:
    response = JSONResponse({"a": np.arange(3)}, status_code=201, headers={"X-One": "1"},
                            raw_headers=((b"x-two", b"2"),))  # fmt: skip
    assert response.body == b'{"a":[0,1,2]}'
    assert response.status_code == 201
    assert dict(response.raw_headers) == {
        b"content-length": b"13",
        b"content-type": b"application/json",
        b"x-one": b"1",
        b"x-two": b"2",
    }


def request(chunks: list[bytes], headers: dict[str, str] | None = None) -> Request:
    messages: list[Message] = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]

    async def receive() -> Message:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return Request({"type": "http", "headers": raw, "method": "POST", "path": "/"}, receive)


def read(chunks: list[bytes], limit: int = 10, **headers: str) -> bytes:
    return asyncio.run(read_json_body(request(chunks, headers), limit))


def test_bodies_are_read_whole_and_bounded_while_reading() -> None:
    assert read([b'{"a":', b"1}"]) == b'{"a":1}'
    with pytest.raises(PayloadTooLarge):
        read([b"12345", b"678901"])  # no Content-Length: counted as it arrives
    with pytest.raises(PayloadTooLarge, match="the body is 11 bytes"):
        read([b"1"], 10, **{"content-length": "11"})


def test_only_uncompressed_json_is_read() -> None:
    json_type = {"content-type": "application/vnd.api+json; charset=utf-8"}
    assert read([b"{}"], 10, **json_type) == b"{}"
    with pytest.raises(UnsupportedMediaType, match="got 'text/plain'"):
        read([b"{}"], 10, **{"content-type": "text/plain"})
    with pytest.raises(UnsupportedMediaType, match="compressed"):
        read([b"{}"], 10, **{"content-encoding": "gzip"})
    # Binary bodies are for the routes that take them: a JSON-only route refuses them.
    with pytest.raises(UnsupportedMediaType, match="got 'application/octet-stream'"):
        read([b"{}"], 10, **{"content-type": "application/octet-stream"})


def test_a_client_that_hangs_up_mid_body_is_499() -> None:
    async def main() -> None:
        messages: list[Message] = [{"type": "http.request", "body": b"{", "more_body": True}]

        async def receive() -> Message:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        await read_json_body(Request({"type": "http", "headers": []}, receive), 100)

    with pytest.raises(ClientClosedRequest):
        asyncio.run(main())


def test_errors_map_to_their_status_in_the_protocols_shape(
    caplog: pytest.LogCaptureFixture,
) -> None:
    unauthorized = error_response(SIMPLE, Unauthorized("a key, please"))
    assert (unauthorized.status_code, unauthorized.body) == (401, b'{"detail":"a key, please"}')
    assert (b"www-authenticate", b'Bearer realm="model-server"') in unauthorized.raw_headers
    timeout = error_response(OIP, RequestTimeout("too slow"))
    assert (timeout.status_code, timeout.body) == (408, b'{"error":"too slow"}')
    assert (b"connection", b"close") in timeout.raw_headers
    allow = error_response(SIMPLE, HTTPException(405, headers={"Allow": "POST"}))
    assert allow.status_code == 405
    assert (b"allow", b"POST") in allow.raw_headers
    with caplog.at_level(logging.ERROR):
        crash = error_response(OIP, KeyError("secret detail"), b"req-9", "/v2/x")
    assert (crash.status_code, crash.body) == (
        500,
        b'{"error":"internal error; the server log has the details"}',
    )
    assert caplog.records[-1].request_id == "req-9"  # type: ignore[attr-defined]
