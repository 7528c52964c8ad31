"""The Open Inference Protocol (KServe/Triton/MLServer "V2" REST) over the same models.

Inference takes JSON tensors and the binary tensor data extension (raw little-endian tensors
after a JSON header whose length `Inference-Header-Content-Length` gives), as Triton's and
KServe's clients send by default, and answers outputs in binary when asked to.

Errors here are `{"error": "..."}`, 400 for bad requests as the protocol specifies, 404 for a
model or version this server does not serve, 503 while no model is loaded.
"""

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from server import __version__
from server.auth import INFERENCE, METADATA, PROBES
from server.dataplane import Choice, DataPlane
from server.errors import OIP
from server.inputs import parse_json
from server.lifecycle import Models
from server.model import Model, Predictions
from server.oip_requests import HeaderCache, InferenceRequest, read_request
from server.routes import Answer, Route
from server.settings import Settings
from server.tensors import datatype, output_bytes
from server.web import JSONResponse, RawResponse, read_inference_body

SERVER_NAME = "mlops-model-server"
# Triton's name for the binary tensor data extension, as its server metadata lists it.
EXTENSIONS = ["binary_tensor_data"]
BODY_ERRORS = (400, 408, 413, 415)
_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
_BINARY_TYPE = b"application/octet-stream"
_HEADER_LENGTH = b"inference-header-content-length"


def infer_response(
    model: Model,
    request: InferenceRequest,
    result: Predictions,
    version_header: tuple[bytes, bytes],
) -> Response:
    """The outputs asked for, as JSON data or, where asked, as raw bytes after a JSON header."""
    outputs = []
    chunks = [b""]  # the JSON header goes first, once it is known
    names, dtypes, raw_outputs = model.output_names, model.output_dtypes, result.raw
    for name, binary in request.outputs:
        tensor = raw_outputs[names.index(name)]
        if binary:
            raw = output_bytes(tensor)
            chunks.append(raw)
            parameters = {"binary_data_size": len(raw)}
            output = {"name": name, "datatype": datatype(dtypes[name]), "shape": tensor.shape,
                      "parameters": parameters}  # fmt: skip
        else:
            output = {"name": name, "datatype": datatype(dtypes[name]), "shape": tensor.shape,
                      "data": tensor.ravel()}  # fmt: skip
        outputs.append(output)
    body: dict[str, Any] = {
        "model_name": model.name,
        "model_version": model.version,
        "outputs": outputs,
    }
    if request.id is not None:
        body["id"] = request.id
    if len(chunks) == 1:
        return JSONResponse(body, raw_headers=(version_header,))
    chunks[0] = header = orjson.dumps(body, option=_JSON_OPTIONS)
    return RawResponse(
        b"".join(chunks),
        _BINARY_TYPE,
        raw_headers=((_HEADER_LENGTH, b"%d" % len(header)), version_header),
    )


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
    header_cache = HeaderCache(max_batch)

    async def server_metadata(request: Request) -> Response:
        return JSONResponse({"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS})

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
            choice = plane.pick()
            if choice.model.name == params["name"]:
                return choice
        return plane.find(params["name"], version)

    async def infer(request: Request) -> Response:
        body, header_length = await read_inference_body(request, max_body)
        choice = choose(request)
        model = choice.model
        if header_length is None:
            checked = read_request(parse_json(body, non_finite_ok=False), model, max_batch)
            rows = checked.batch(None, model)
        else:
            checked = header_cache.read(body[:header_length], model)
            rows = checked.batch(memoryview(body)[header_length:], model)
        result = await plane.coalescer.score(choice, rows, request.scope["request_id"])
        return infer_response(model, checked, result, (b"x-model-version", model.version.encode()))

    def route(method: str, path: str, endpoint: Any, summary: str, **kwargs: Any) -> Route:
        return Route(method, path, endpoint, OIP, summary, **kwargs)

    routes = [
        route(
            "GET", "/v2", server_metadata, "Server metadata",
            answers={200: Answer("ServerMetadata", "Server")}, group=METADATA,
        ),
        route(
            "GET", "/v2/health/live", live, "Server live",
            answers={200: Answer("ServerLive", "Live")}, sheddable=False, group=PROBES,
        ),
        route(
            "GET", "/v2/health/ready", ready, "Server ready",
            answers={200: Answer("ServerReady", "Ready"), 503: Answer("ServerReady", "Not ready")},
            sheddable=False, group=PROBES,
        ),
    ]  # fmt: skip
    for base in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        routes += [
            route(
                "GET", base, metadata, "Model metadata",
                answers={200: Answer("ModelMetadata", "Model")}, errors=(404,), group=METADATA,
            ),
            route(
                "GET", f"{base}/ready", model_ready, "Model ready",
                answers={200: Answer("ModelReady", "Ready")}, errors=(404,), group=METADATA,
            ),
            route(
                "POST", f"{base}/infer", infer, "Open Inference Protocol inference",
                answers={200: Answer("InferenceResponse", "Output tensors")},
                body="InferenceRequest", errors=(*BODY_ERRORS, 404), group=INFERENCE,
            ),
        ]  # fmt: skip
    return routes
