"""The Open Inference Protocol (KServe/Triton/MLServer "V2" REST) over the same models.

Errors here are `{"error": "..."}` (app.py formats them by path prefix), 400 for bad requests as
the protocol specifies, 404 for a model or version this server does not serve, 503 while no
model is loaded.
"""

from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response

from server import __version__
from server.auth import ApiKeys
from server.errors import ModelNotReady, NotFound
from server.inputs import oip_batch, parse_json, requested_outputs
from server.model import Model
from server.model_manager import ModelSlot, Serving
from server.routing import TemplatedRoute
from server.settings import Settings
from server.web import JSONResponse, read_json_body

SERVER_NAME = "mlops-model-server"
PLATFORM = "onnxruntime_onnx"
_DATATYPES = {
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(int64)": "INT64",
    "tensor(int32)": "INT32",
}


def _datatype(onnx_type: str) -> str:
    return _DATATYPES.get(onnx_type, "BYTES")


def find_model(serving: Serving, name: str, version: str | None) -> tuple[Model, ModelSlot]:
    """The served model with this name (and version, when given)."""
    slots = [s for s in (serving.champion, serving.challenger) if s is not None]
    loaded = [(s.model, s) for s in slots if s.model is not None]
    if not loaded:
        raise ModelNotReady(f"no model loaded yet: {serving.champion.status}")
    named = [(m, s) for m, s in loaded if m.name == name]
    if not named:
        served = sorted({m.name for m, _ in loaded})
        raise NotFound(f"model {name[:200]!r} is not served here; serving {served}")
    if version is None:
        return named[0]
    for model, slot in named:
        if model.version == version:
            return model, slot
    versions = [m.version for m, _ in named]
    raise NotFound(
        f"model {name[:200]!r} version {version[:50]!r} is not loaded; serving {versions}"
    )


def model_metadata(model: Model, versions: list[str]) -> dict[str, Any]:
    outputs = []
    for name in model.output_names:
        shape = [-1, len(model.classes)] if name == model.outputs.get("probabilities") else [-1]
        if name == model.outputs.get("value"):
            shape = [-1, 1]
        outputs.append(
            {"name": name, "datatype": _datatype(model.output_types[name]), "shape": shape}
        )
    return {
        "name": model.name,
        "versions": versions,
        "platform": PLATFORM,
        "inputs": [
            {
                "name": model.input_name,
                "datatype": "FP32" if model.input_dtype is np.float32 else "FP64",
                "shape": [-1, model.n_features],
            }
        ],
        "outputs": outputs,
        "parameters": {"task": model.task, "features": model.features, "classes": model.classes},
    }


def oip_routes(settings: Settings, serving: Serving, keys: ApiKeys) -> list[TemplatedRoute]:
    max_body, max_batch = settings.max_body_bytes, settings.max_batch

    def served_versions(name: str) -> list[str]:
        slots = [s for s in (serving.champion, serving.challenger) if s is not None]
        return [s.model.version for s in slots if s.model is not None and s.model.name == name]

    async def server_metadata(request: Request) -> Response:
        return JSONResponse({"name": SERVER_NAME, "version": __version__, "extensions": []})

    async def live(request: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(request: Request) -> Response:
        return JSONResponse({"ready": serving.ready}, status_code=200 if serving.ready else 503)

    async def metadata(request: Request) -> Response:
        params = request.path_params
        model, _ = find_model(serving, params["name"], params.get("version"))
        return JSONResponse(model_metadata(model, served_versions(model.name)))

    async def model_ready(request: Request) -> Response:
        params = request.path_params
        model, _ = find_model(serving, params["name"], params.get("version"))
        return JSONResponse({"name": model.name, "ready": True})

    async def infer(request: Request) -> Response:
        keys.check(request)
        body = await read_json_body(request, max_body)
        params = request.path_params
        version = params.get("version")
        if version is None:  # the server's policy: the same champion/challenger split as /predict
            choice = serving.pick()
            if choice.model.name != params["name"]:
                choice = serving.choose(find_model(serving, params["name"], None)[1])
        else:
            choice = serving.choose(find_model(serving, params["name"], version)[1])
        model = choice.model
        payload = parse_json(body, non_finite_ok=False)
        rows = oip_batch(payload, model, max_batch)
        names = requested_outputs(payload, model)
        result = await serving.coalescer.score(choice, rows)
        raw = dict(zip(model.output_names, result.raw, strict=True))
        outputs = []
        for name in names:
            tensor = raw[name]
            outputs.append(
                {
                    "name": name,
                    "shape": list(tensor.shape),
                    "datatype": _datatype(model.output_types[name]),
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

    base = "/v2/models/{name}"
    versioned = "/v2/models/{name}/versions/{version}"
    return [
        TemplatedRoute("/v2", server_metadata, methods=["GET"]),
        TemplatedRoute("/v2/health/live", live, methods=["GET"]),
        TemplatedRoute("/v2/health/ready", ready, methods=["GET"]),
        TemplatedRoute(base, metadata, methods=["GET"]),
        TemplatedRoute(versioned, metadata, methods=["GET"]),
        TemplatedRoute(f"{base}/ready", model_ready, methods=["GET"]),
        TemplatedRoute(f"{versioned}/ready", model_ready, methods=["GET"]),
        TemplatedRoute(f"{base}/infer", infer, methods=["POST"]),
        TemplatedRoute(f"{versioned}/infer", infer, methods=["POST"]),
    ]
