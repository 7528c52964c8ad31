"""The simple JSON API, compatible with the original platform: /predict, /health, /ready, ..."""

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from server.dataplane import DataPlane
from server.errors import SIMPLE
from server.inputs import parse_json, simple_batch
from server.lifecycle import Models
from server.metrics import Metrics
from server.model import Model, Predictions
from server.routes import Answer, Route
from server.settings import Settings
from server.web import JSONResponse, read_json_body

# The errors a JSON body can cause on this API, besides the route's own.
BODY_ERRORS = (400, 408, 413, 415, 422)


def simple_response(model: Model, result: Predictions, single: bool) -> dict[str, Any]:
    """The original API's answer: one prediction, or one per instance, in order."""
    body: dict[str, Any]
    if result.class_indices is not None:
        assert result.probabilities is not None
        classes = model.classes
        # Python lists index faster than numpy scalars, and a batch is converted in one call.
        labels = result.class_indices.tolist()
        probabilities = result.probabilities.tolist()
        # float32 probabilities can sum a hair past one (1.0000001): a confidence is at most 1.
        if single:
            label = labels[0]
            confidence = probabilities[0][label]
            body = {"prediction": classes[label], "confidence": min(confidence, 1.0)}
        else:
            body = {
                "predictions": [
                    {"prediction": classes[label], "confidence": min(row[label], 1.0)}
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
    settings: Settings, models: Models, plane: DataPlane, metrics: Metrics
) -> list[Route]:
    max_body, max_batch = settings.max_body_bytes, settings.max_batch

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "healthy"})

    async def ready(request: Request) -> Response:
        if models.ready:
            return JSONResponse({"status": "ready", "model_loaded": True})
        loaded = models.champion.model is not None
        return JSONResponse(
            {"status": "not ready", "model_loaded": loaded, "reason": models.not_ready_reason},
            status_code=503,
        )

    async def predict(request: Request) -> Response:
        body = await read_json_body(request, max_body)
        choice = plane.pick(request.scope["client_request_id"] if plane.split else None)
        model = choice.model
        rows, single = simple_batch(parse_json(body), model, max_batch)
        result = await plane.coalescer.score(choice, rows, request.scope["request_id"])
        return JSONResponse(
            simple_response(model, result, single),
            raw_headers=((b"x-model-version", model.version.encode()),),
        )

    async def model_info(request: Request) -> Response:
        info = plane.champion_model.info()
        info["variant"] = "champion"
        slot = models.challenger
        if slot is not None:
            info["challenger"] = {
                "mode": settings.challenger_mode,
                "traffic": settings.challenger_traffic,
                **(slot.model.info() if slot.model else {"status": slot.status}),
            }
        return JSONResponse(info)

    async def drift(request: Request) -> Response:
        plane.champion_model  # noqa: B018 - raises ModelNotReady when nothing is served
        report = plane.update_drift_metrics()
        if report is None:
            return JSONResponse(
                {"status": "unavailable", "reason": "the model carries no drift reference"}
            )
        return JSONResponse(report)

    async def metrics_endpoint(request: Request) -> Response:
        content, media_type = metrics.exposition()
        return Response(content, media_type=media_type)

    def route(method: str, path: str, endpoint: Any, summary: str, **kwargs: Any) -> Route:
        return Route(method, path, endpoint, SIMPLE, summary, **kwargs)

    return [
        route(
            "GET", "/health", health, "Liveness",
            answers={200: Answer("Health", "The process is up")},
            sheddable=False,
        ),
        route(
            "GET", "/ready", ready,
            "Readiness: a model is loaded and the server is not shutting down",
            answers={
                200: Answer("Readiness", "Ready"),
                503: Answer("Readiness", "Not ready, with the reason"),
            },
            sheddable=False,
        ),
        route(
            "POST", "/predict", predict, "Predict one row (features) or a batch (instances)",
            answers={200: Answer("PredictResponse", "One result, or one per instance")},
            body="PredictRequest", errors=BODY_ERRORS, needs_key=True,
        ),
        route(
            "GET", "/model/info", model_info, "The model being served",
            answers={200: Answer("ModelInfo", "Model")},
        ),
        route(
            "GET", "/drift", drift, "Drift of live traffic against training",
            answers={200: Answer("Drift", "PSI per feature and of the predictions")},
        ),
        route(
            "GET", "/metrics", metrics_endpoint, "Prometheus metrics",
            answers={200: Answer("Metrics", "Prometheus text format", "text/plain")},
            sheddable=False,
        ),
    ]  # fmt: skip
