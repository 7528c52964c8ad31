"""The app's own CPU cost per request, in process: no sockets, no client, no uvicorn.

Drives the ASGI app directly on one event loop and divides the process's CPU time by the number
of requests, for /predict and every other protocol's form with one row. CPU time rather than wall time, so a busy
machine moves the figure less; run it before and after a change to the request path.

    python -m loadtest.app_cost --model-uri build/model
"""

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson

from loadtest import payloads
from tests.samples import SETOSA

_ROW = [list(SETOSA.values())]
_BINARY, _HEADER_LENGTH = payloads.oip_binary("input", _ROW)
# name -> (path, body, extra headers): every HTTP protocol with the same one row.
ROUTES: dict[str, tuple[str, bytes, tuple[tuple[bytes, bytes], ...]]] = {
    "/predict": ("/predict", orjson.dumps({"features": SETOSA}), ()),
    "OIP infer": ("/v2/models/iris-classifier/infer", payloads.oip_json("input", _ROW), ()),
    "OIP binary": (
        "/v2/models/iris-classifier/infer",
        _BINARY,
        (
            (b"content-type", b"application/octet-stream"),
            (b"inference-header-content-length", str(_HEADER_LENGTH).encode()),
        ),
    ),
    "MLflow": ("/invocations", payloads.mlflow_split(list(SETOSA), _ROW), ()),
    "KServe V1": ("/v1/models/iris-classifier:predict", payloads.kserve_v1(_ROW), ()),
}


async def _drive(
    app: Any, path: str, body: bytes, n: int, extra: tuple[tuple[bytes, bytes], ...] = ()
) -> float:
    """CPU seconds for `n` sequential requests, each answered 200."""
    named = {name for name, _ in extra}
    headers = [
        *([] if b"content-type" in named else [(b"content-type", b"application/json")]),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    statuses: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    def scope() -> dict[str, Any]:
        return {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
            "root_path": "", "headers": headers, "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 8000),
        }  # fmt: skip

    message = {"type": "http.request", "body": body, "more_body": False}

    async def receive() -> dict[str, Any]:
        return message

    started = time.process_time()
    for _ in range(n):
        await app(scope(), receive, send)
    seconds = time.process_time() - started
    assert set(statuses) == {200}, set(statuses)
    return seconds


def measure(make_app: Callable[[], Any], requests: int, repeats: int) -> dict[str, float]:
    """Median µs of CPU per request for each route."""
    import uvloop

    app = make_app()
    results: dict[str, float] = {}

    async def main() -> None:
        async with app.router.lifespan_context(app):
            deadline = time.monotonic() + 30
            while not _ready(app):
                assert time.monotonic() < deadline, "no model loaded"
                await asyncio.sleep(0.05)
            for name, (path, body, extra) in ROUTES.items():
                await _drive(app, path, body, 500, extra)  # warm-up
                runs = [await _drive(app, path, body, requests, extra) for _ in range(repeats)]
                results[name] = statistics.median(runs) / requests * 1e6

    uvloop.run(main())
    return results


def _ready(app: Any) -> bool:
    state = app.state
    holder: Any = getattr(state, "models", None) or getattr(state, "serving", None)
    return bool(holder.ready)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtest.app_cost", description=__doc__)
    parser.add_argument("--model-uri", default="models:/iris-classifier@production")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--record", action="store_true", help="record predictions too (off: the request path alone)"
    )
    args = parser.parse_args()
    from server.app import create_app
    from server.settings import Settings

    # Recording's cost is measured by `make bench-recording`; here, the request path alone.
    settings = Settings(model_uri=args.model_uri, record_predictions=args.record)
    for name, micros in measure(lambda: create_app(settings), args.requests, args.repeats).items():
        print(f"{name:<10} {micros:6.1f} µs CPU per request (app only, in process)")


if __name__ == "__main__":
    main()
