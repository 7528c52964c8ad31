"""KServe's V1 protocol, as KServe's scikit-learn server answers it.

`POST /v1/models/{name}:predict` takes `{"instances": [...]}` (or `"inputs"`): rows of values in
the model's feature order, or records keyed by feature name; it answers
`{"predictions": [...]}`, one label (classifiers) or value (regressors) per row, as the
scikit-learn server's `predict` does. `GET /v1/models/{name}` is the model's readiness,
`GET /v1/models` lists the models. Errors are `{"error": "..."}`: 400 for any bad input, 404 for
a model not served here, 503 while none is ready (kserve/errors.py).
"""

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from server.auth import INFERENCE, METADATA
from server.dataplane import Choice, DataPlane
from server.errors import KSERVE_V1, InvalidInput
from server.inputs import parse_json
from server.model import Model
from server.routes import Answer, Route
from server.settings import Settings
from server.tabular import from_instances
from server.web import JSONResponse, read_json_body


def v1_batch(payload: Any, model: Model, max_batch: int) -> Any:
    """The rows of a V1 predict request: its `instances` (or `inputs`)."""
    if not isinstance(payload, dict):
        raise InvalidInput('the request must be a JSON object with "instances"')
    key = "inputs" if "inputs" in payload else "instances"
    if key not in payload:
        raise InvalidInput('the request must be a JSON object with "instances"')
    return from_instances(payload[key], model, max_batch, key)


def kserve_v1_routes(settings: Settings, plane: DataPlane) -> list[Route]:
    max_body, max_batch = settings.max_body_bytes, settings.max_batch

    def choose(request: Request) -> Choice:
        name = request.path_params["name"]
        choice = plane.pick()
        if choice.model.name == name:
            return choice
        return plane.find(name, None)

    async def predict(request: Request) -> Response:
        body = await read_json_body(request, max_body)
        choice = choose(request)
        model = choice.model
        rows = v1_batch(parse_json(body), model, max_batch)
        result = await plane.coalescer.score(choice, rows, request.scope["request_id"])
        return JSONResponse(
            {"predictions": result.answers},
            raw_headers=((b"x-model-version", model.version.encode()),),
        )

    async def model_ready(request: Request) -> Response:
        model = plane.find(request.path_params["name"], None).model
        return JSONResponse({"name": model.name, "ready": True})

    async def listing(request: Request) -> Response:
        loaded = [c for c in (plane.champion, plane.challenger) if c is not None]
        return JSONResponse({"models": sorted({c.model.name for c in loaded})})

    def route(method: str, path: str, endpoint: Any, summary: str, **kwargs: Any) -> Route:
        return Route(method, path, endpoint, KSERVE_V1, summary, **kwargs)

    return [
        route(
            "GET", "/v1/models", listing, "KServe V1: the models served",
            answers={200: Answer("V1Models", "Model names")}, group=METADATA,
        ),
        route(
            "GET", "/v1/models/{name}", model_ready, "KServe V1: model readiness",
            answers={200: Answer("V1ModelReady", "Ready")}, errors=(404,), group=METADATA,
        ),
        route(
            "POST", "/v1/models/{name}:predict", predict,
            "KServe V1 prediction: instances as rows or records",
            answers={200: Answer("V1Predictions", "One prediction per instance")},
            body="V1Request", errors=(400, 404, 408, 413, 415), group=INFERENCE,
        ),
    ]  # fmt: skip
