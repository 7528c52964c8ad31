"""The request middleware and the dispatcher, driven through the ASGI interface directly."""

import asyncio
from pathlib import Path

import orjson
import pytest
from starlette.applications import Starlette

from server.app import ModelServer, create_app
from server.middleware import RequestMiddleware
from server.model import Origin, load_model
from server.registry import read_model_dir
from server.settings import Settings
from tests.samples import SETOSA
from tests.server.asgi import call

PREDICT = orjson.dumps({"features": SETOSA})
INFER = orjson.dumps(
    {
        "inputs": [
            {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}
        ]
    }
)


def loaded_app(iris_dir: Path, **settings: object) -> ModelServer:
    """An app with iris swapped in by hand (no lifespan, no background tasks)."""
    app = create_app(Settings(model_uri=str(iris_dir), **settings))  # type: ignore[arg-type]
    files = read_model_dir(iris_dir)
    app.state.models.champion.swap(load_model(files, Origin(str(iris_dir), "local", "1")))
    return app


def metrics_text(app: Starlette) -> str:
    return str(app.state.metrics.exposition()[0].decode())


def test_request_ids_are_echoed_when_safe_and_made_up_otherwise(iris_dir: Path) -> None:
    app = loaded_app(iris_dir)

    async def main() -> None:
        echoed = await call(app, "GET", "/health", headers=(("x-request-id", "abc-123"),))
        assert echoed.headers["x-request-id"] == "abc-123"
        unsafe = await call(app, "GET", "/health", headers=(("x-request-id", "a b\x7f"),))
        assert unsafe.headers["x-request-id"] != "a b\x7f"
        assert len(unsafe.headers["x-request-id"]) == 32
        missing = await call(app, "GET", "/nowhere")  # unmatched answers carry one too
        assert missing.status == 404
        assert "x-request-id" in missing.headers

    asyncio.run(main())


@pytest.mark.parametrize(
    ("path", "body", "shape"),
    [("/predict", PREDICT, "detail"), ("/v2/models/iris-classifier/infer", INFER, "error")],
)
def test_shedding_answers_in_the_routes_protocol_and_never_sheds_probes(
    iris_dir: Path, path: str, body: bytes, shape: str
) -> None:
    app = loaded_app(iris_dir, max_concurrency=1)

    async def main() -> None:
        hold = asyncio.Event()
        held = asyncio.create_task(call(app, "POST", path, body, hold=hold))
        await asyncio.sleep(0.01)  # the held request is in flight now
        shed = await call(app, "POST", path, body)
        assert shed.status == 503
        assert shed.headers["retry-after"] == "1"
        assert list(shed.json()) == [shape]
        for probe in ("/health", "/ready", "/metrics", "/v2/health/live", "/v2/health/ready"):
            assert (await call(app, "GET", probe)).status == 200, probe
        hold.set()
        assert (await held).status == 200

    asyncio.run(main())
    text = metrics_text(app)
    assert 'http_requests_total{method="POST",route="shed",status="503"} 1.0' in text
    assert "requests_shed_total 1.0" in text


def test_an_unhandled_error_is_a_logged_500_in_the_protocols_shape(
    iris_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = loaded_app(iris_dir)

    def broken(*args: object) -> None:
        raise RuntimeError("a bug")

    app.state.plane.coalescer._score = broken

    async def main() -> None:
        simple = await call(app, "POST", "/predict", PREDICT, headers=(
            ("content-type", "application/json"), ("x-request-id", "req-1")))  # fmt: skip
        assert simple.status == 500
        assert simple.json() == {"detail": "internal error; the server log has the details"}
        oip = await call(app, "POST", "/v2/models/iris-classifier/infer", INFER)
        assert oip.status == 500
        assert list(oip.json()) == ["error"]

    asyncio.run(main())
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert any(getattr(r, "request_id", None) == "req-1" for r in errors)  # the log has it
    assert 'route="/predict",status="500"' in metrics_text(app)


def test_metrics_label_routes_by_template_and_unknown_paths_as_one(iris_dir: Path) -> None:
    app = loaded_app(iris_dir)

    async def main() -> None:
        await call(app, "GET", "/v2/models/iris-classifier/ready")
        for i in range(5):
            await call(app, "GET", f"/random/{i}")

    asyncio.run(main())
    text = metrics_text(app)
    assert 'route="/v2/models/{name}/ready",status="200"' in text
    assert 'http_requests_total{method="GET",route="unmatched",status="404"} 5.0' in text


def test_expected_503s_are_not_logged_as_errors(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(Settings(model_uri=str(tmp_path / "nothing-here")))

    async def main() -> None:
        assert (await call(app, "GET", "/ready")).status == 503
        assert (await call(app, "POST", "/predict", PREDICT)).status == 503

    asyncio.run(main())
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


@pytest.mark.parametrize("cors", [(), ("https://app.example",)], ids=["direct", "layered"])
def test_matched_routes_answer_alike_with_or_without_middleware_between(
    iris_dir: Path, cors: tuple[str, ...]
) -> None:
    """With no middleware configured the request middleware answers matched routes itself."""
    app = loaded_app(iris_dir, api_keys=("k" * 32,), cors_allow_origins=cors)
    stack = app.build_middleware_stack()
    assert isinstance(stack, RequestMiddleware)
    assert (stack.keys is not None) == (not cors)

    async def main() -> None:
        key = ("authorization", "Bearer " + "k" * 32)
        json = ("content-type", "application/json")
        ok = await call(
            app, "POST", "/predict", PREDICT, headers=(key, json, ("x-request-id", "r1"))
        )
        assert (ok.status, ok.json()["prediction"], ok.headers["x-request-id"]) == (
            200,
            "setosa",
            "r1",
        )
        refused = await call(app, "POST", "/predict", PREDICT, headers=(json,))
        assert (refused.status, list(refused.json())) == (401, ["detail"])
        assert len(refused.headers["x-request-id"]) == 32
        bad = await call(app, "POST", "/predict", b"{", headers=(key, json))
        assert (bad.status, "x-request-id" in bad.headers) == (400, True)

    asyncio.run(main())
    text = metrics_text(app)
    for status in ("200", "401", "400"):
        assert f'route="/predict",status="{status}"' in text


@pytest.mark.parametrize("cors", [(), ("https://app.example",)], ids=["direct", "layered"])
def test_an_answer_that_cannot_be_sent_is_a_logged_500(
    iris_dir: Path, cors: tuple[str, ...], caplog: pytest.LogCaptureFixture
) -> None:
    app = loaded_app(iris_dir, cors_allow_origins=cors)
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/predict", "raw_path": b"/predict", "query_string": b"",
        "root_path": "", "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8000),
    }  # fmt: skip

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": PREDICT, "more_body": False}

    async def send(message: dict[str, object]) -> None:
        if message["type"] == "http.response.body":
            raise OSError("the connection broke")

    asyncio.run(app(scope, receive, send))  # type: ignore[arg-type]
    assert any(r.getMessage() == "failed after answering" for r in caplog.records)
    assert 'route="/predict",status="500"' in metrics_text(app)
