"""The simple JSON API, compatible with the original platform: /predict, /health, /ready, ..."""

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from server.auth import ApiKeys
from server.errors import ModelNotReady
from server.inputs import parse_json, simple_batch
from server.metrics import Metrics
from server.model import Model, Predictions
from server.model_manager import Serving
from server.routing import TemplatedRoute
from server.settings import Settings
from server.web import JSONResponse, read_json_body


def simple_response(model: Model, result: Predictions, single: bool) -> dict[str, Any]:
    """The original API's answer: one prediction, or one per instance, in order."""
    body: dict[str, Any]
    if result.class_indices is not None:
        assert result.probabilities is not None
        classes = model.classes
        # Python lists index faster than numpy scalars, and a batch is converted in one call.
        labels = result.class_indices.tolist()
        probabilities = result.probabilities.tolist()
        if single:
            label = labels[0]
            body = {"prediction": classes[label], "confidence": probabilities[0][label]}
        else:
            body = {
                "predictions": [
                    {"prediction": classes[label], "confidence": row[label]}
                    for label, row in zip(labels, probabilities, strict=True)
                ]
            }
    else:
        assert result.values is not None
        values = result.values.tolist()
        if single:
            body = {"prediction": values[0]}
        else:
            body = {"predictions": [{"prediction": value} for value in values]}
    body["model_version"] = model.version
    body["inference_time_ms"] = round(result.seconds * 1000, 4)
    return body


def simple_routes(
    settings: Settings, serving: Serving, metrics: Metrics, keys: ApiKeys
) -> list[TemplatedRoute]:
    max_body, max_batch = settings.max_body_bytes, settings.max_batch

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "healthy"})

    async def ready(request: Request) -> Response:
        if serving.ready:
            return JSONResponse({"status": "ready", "model_loaded": True})
        reason = "shutting down" if serving.draining else serving.champion.status
        loaded = serving.champion.model is not None
        return JSONResponse(
            {"status": "not ready", "model_loaded": loaded, "reason": reason}, status_code=503
        )

    async def predict(request: Request) -> Response:
        keys.check(request)
        body = await read_json_body(request, max_body)
        choice = serving.pick()
        model = choice.model
        rows, single = simple_batch(parse_json(body), model, max_batch)
        result = await serving.coalescer.score(choice, rows)
        return JSONResponse(
            simple_response(model, result, single),
            raw_headers=((b"x-model-version", model.version.encode()),),
        )

    async def model_info(request: Request) -> Response:
        model = serving.champion.model
        if model is None:
            raise ModelNotReady(f"no model loaded yet: {serving.champion.status}")
        info = model.info()
        info["variant"] = "champion"
        challenger = serving.challenger
        if challenger is not None:
            info["challenger"] = {
                "mode": settings.challenger_mode,
                "traffic": settings.challenger_traffic,
                **(challenger.model.info() if challenger.model else {"status": challenger.status}),
            }
        return JSONResponse(info)

    async def drift(request: Request) -> Response:
        if serving.champion.model is None:
            raise ModelNotReady(f"no model loaded yet: {serving.champion.status}")
        report = serving.update_drift_metrics()
        if report is None:
            return JSONResponse(
                {"status": "unavailable", "reason": "the model carries no drift reference"}
            )
        return JSONResponse(report)

    async def metrics_endpoint(request: Request) -> Response:
        content, media_type = metrics.exposition()
        return Response(content, media_type=media_type)

    return [
        TemplatedRoute("/health", health, methods=["GET"]),
        TemplatedRoute("/ready", ready, methods=["GET"]),
        TemplatedRoute("/predict", predict, methods=["POST"]),
        TemplatedRoute("/model/info", model_info, methods=["GET"]),
        TemplatedRoute("/drift", drift, methods=["GET"]),
        TemplatedRoute("/metrics", metrics_endpoint, methods=["GET"]),
    ]
