"""The Open Inference Protocol (KServe/Triton/MLServer "V2" REST) over the same models.

Errors here are `{"error": "..."}`, 400 for bad requests as the protocol specifies, 404 for a
model or version this server does not serve, 503 while no model is loaded.
"""

from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response

from server import __version__
from server.dataplane import Choice, DataPlane
from server.errors import OIP
from server.inputs import oip_batch, parse_json, requested_outputs
from server.lifecycle import Models
from server.model import Model
from server.routes import Answer, Route
from server.settings import Settings
from server.web import JSONResponse, read_json_body

SERVER_NAME = "mlops-model-server"
_DATATYPES: dict[type, str] = {
    np.float32: "FP32",
    np.float64: "FP64",
    np.int64: "INT64",
    np.int32: "INT32",
}
BODY_ERRORS = (400, 408, 413, 415)


def datatype(dtype: type) -> str:
    """The protocol's name for a numpy scalar type."""
    return _DATATYPES.get(dtype, "BYTES")


def model_metadata(model: Model, versions: list[str]) -> dict[str, Any]:
    roles = model.contract.outputs
    outputs = []
    for name in model.output_names:
        shape = [-1, len(model.classes)] if name == roles.get("probabilities") else [-1]
        if name == roles.get("value"):
            shape = [-1, 1]
        outputs.append(
            {"name": name, "datatype": datatype(model.output_dtypes[name]), "shape": shape}
        )
    return {
        "name": model.name,
        "versions": versions,
        "platform": model.platform,
        "inputs": [
            {
                "name": model.input_name,
                "datatype": datatype(model.input_dtype),
                "shape": [-1, model.n_features],
            }
        ],
        "outputs": outputs,
        "parameters": {"task": model.task, "features": model.features, "classes": model.classes},
    }


def oip_routes(settings: Settings, models: Models, plane: DataPlane) -> list[Route]:
    max_body, max_batch = settings.max_body_bytes, settings.max_batch

    async def server_metadata(request: Request) -> Response:
        return JSONResponse({"name": SERVER_NAME, "version": __version__, "extensions": []})

    async def live(request: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(request: Request) -> Response:
        return JSONResponse({"ready": models.ready}, status_code=200 if models.ready else 503)

    async def metadata(request: Request) -> Response:
        params = request.path_params
        model = plane.find(params["name"], params.get("version")).model
        return JSONResponse(model_metadata(model, plane.versions(model.name)))

    async def model_ready(request: Request) -> Response:
        params = request.path_params
        model = plane.find(params["name"], params.get("version")).model
        return JSONResponse({"name": model.name, "ready": True})

    def choose(request: Request) -> Choice:
        params = request.path_params
        version = params.get("version")
        if version is None:  # the server's policy: the same champion/challenger split as /predict
            choice = plane.pick(request.scope["client_request_id"] if plane.split else None)
            if choice.model.name == params["name"]:
                return choice
        return plane.find(params["name"], version)

    async def infer(request: Request) -> Response:
        body = await read_json_body(request, max_body)
        choice = choose(request)
        model = choice.model
        payload = parse_json(body)
        rows = oip_batch(payload, model, max_batch)
        names = requested_outputs(payload, model)
        result = await plane.coalescer.score(choice, rows, request.scope["request_id"])
        raw = dict(zip(model.output_names, result.raw, strict=True))
        outputs = []
        for name in names:
            tensor = raw[name]
            outputs.append(
                {
                    "name": name,
                    "shape": list(tensor.shape),
                    "datatype": datatype(model.output_dtypes[name]),
                    "data": tensor.ravel(),
                }
            )
        response: dict[str, Any] = {
            "model_name": model.name,
            "model_version": model.version,
            "outputs": outputs,
        }
        if isinstance(payload.get("id"), str):
            response["id"] = payload["id"]
        return JSONResponse(response, raw_headers=((b"x-model-version", model.version.encode()),))

    def route(method: str, path: str, endpoint: Any, summary: str, **kwargs: Any) -> Route:
        return Route(method, path, endpoint, OIP, summary, **kwargs)

    routes = [
        route(
            "GET", "/v2", server_metadata, "Server metadata",
            answers={200: Answer("ServerMetadata", "Server")},
        ),
        route(
            "GET", "/v2/health/live", live, "Server live",
            answers={200: Answer("ServerLive", "Live")}, sheddable=False,
        ),
        route(
            "GET", "/v2/health/ready", ready, "Server ready",
            answers={200: Answer("ServerReady", "Ready"), 503: Answer("ServerReady", "Not ready")},
            sheddable=False,
        ),
    ]  # fmt: skip
    for base in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        routes += [
            route(
                "GET", base, metadata, "Model metadata",
                answers={200: Answer("ModelMetadata", "Model")}, errors=(404,),
            ),
            route(
                "GET", f"{base}/ready", model_ready, "Model ready",
                answers={200: Answer("ModelReady", "Ready")}, errors=(404,),
            ),
            route(
                "POST", f"{base}/infer", infer, "Open Inference Protocol inference",
                answers={200: Answer("InferenceResponse", "Output tensors")},
                body="InferenceRequest", errors=(*BODY_ERRORS, 404), needs_key=True,
            ),
        ]  # fmt: skip
    return routes
