"""The OpenAPI 3 document, generated from the route table and the served model's contract.

Paths, methods, parameters, request bodies, answers, error statuses and security come from the
routes (`server.routes`); error bodies from each route's protocol; the schemas of features and
tensors from the model's contract (its feature names, its input type's range, its classes).
"""

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from server import __version__
from server.contract import largest_accepted
from server.errors import PROTOCOLS
from server.feedback import openapi_schemas as feedback_schemas
from server.model import Model
from server.routes import Route
from server.settings import Settings

_JSON = "application/json"
_PARAMETER = re.compile(r"{(\w+)}")
ERROR_TEXT = {
    400: "Malformed JSON, or a request the protocol cannot take (a missing or unknown feature)",
    401: "Missing or invalid API key",
    404: "Unknown model or version",
    408: "The body did not arrive within BODY_TIMEOUT_SECONDS",
    413: "Body larger than MAX_BODY_BYTES or more rows than MAX_BATCH",
    415: "Content-Type is not JSON, or the body is compressed",
    422: "Wrong body shape, or values that are not finite numbers in the model's input range",
    503: "No model loaded yet, shutting down, or over the concurrency limit",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: dict[str, Any], required: Sequence[str] = ()) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


_STRING = {"type": "string"}
_BOOLEAN = {"type": "boolean"}
_STRINGS = {"type": "array", "items": _STRING}


def _number_schema(model: Model | None) -> dict[str, Any]:
    """A feature value: finite, and within the range of the model's input type."""
    limit = largest_accepted(model.input_dtype if model else np.float32)
    return {"type": "number", "minimum": -limit, "maximum": limit}


def _example_row(model: Model) -> list[float]:
    return [float(v) for v in model.example_rows()[0]]


def _features_schema(model: Model | None) -> dict[str, Any]:
    if model is None:
        return {"type": "object", "additionalProperties": _number_schema(model)}
    return {
        "type": "object",
        "properties": {name: _number_schema(model) for name in model.features},
        "required": list(model.features),
        "additionalProperties": False,
        "example": dict(zip(model.features, _example_row(model), strict=True)),
    }


def _error_schemas() -> dict[str, Any]:
    """Each protocol's error body, from the protocol itself."""
    schemas = {}
    for protocol in PROTOCOLS:
        keys = list(protocol.error("message"))
        schemas[protocol.error_schema] = _object({key: _STRING for key in keys}, keys)
    return schemas


def component_schemas(model: Model | None, settings: Settings) -> dict[str, Any]:
    """The schemas the routes refer to, with the model's features, classes and input range."""
    prediction = _object(
        {
            "prediction": {"oneOf": [_STRING, {"type": "number"}]},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        },
        ["prediction"],
    )
    tensor = _object(
        {
            "name": _STRING,
            "datatype": _STRING,
            "shape": {"type": "array", "items": {"type": "integer"}},
        },
        ["name", "datatype", "shape"],
    )
    schemas: dict[str, Any] = {
        **_error_schemas(),
        "Health": {**_object({"status": _STRING}, ["status"]), "example": {"status": "healthy"}},
        "Readiness": _object(
            {"status": _STRING, "model_loaded": _BOOLEAN, "reason": _STRING},
            ["status", "model_loaded"],
        ),
        "Metrics": _STRING,
        "Features": _features_schema(model),
        "PredictRequest": {
            "oneOf": [
                {
                    **_object({"features": _ref("Features")}, ["features"]),
                    "additionalProperties": False,
                },
                {
                    **_object(
                        {
                            "instances": {
                                "type": "array",
                                "items": _ref("Features"),
                                "minItems": 1,
                                "maxItems": settings.max_batch,
                            }
                        },
                        ["instances"],
                    ),
                    "additionalProperties": False,
                },
            ]
        },
        "PredictResponse": _object(
            {
                **prediction["properties"],
                "predictions": {"type": "array", "items": prediction},
                "model_version": _STRING,
                "inference_time_ms": {"type": "number"},
            },
            ["model_version", "inference_time_ms"],
        ),
        "ModelInfo": _object(
            {
                "name": _STRING,
                "version": _STRING,
                "framework": _STRING,
                "task": {"type": "string", "enum": ["classification", "regression"]},
                "features": _STRINGS,
                "classes": _STRINGS,
                "source": {"type": "string", "enum": ["registry", "fallback", "local"]},
                "model_uri": _STRING,
                "loaded_at": {"type": "string", "format": "date-time"},
                "variant": _STRING,
                "metrics": {"type": "object", "additionalProperties": {"type": "number"}},
                "challenger": {"type": "object"},
            },
            ["name", "version", "framework", "task", "features", "source"],
        ),
        "Drift": _object(
            {
                "status": _STRING,
                "window_size": {"type": "integer"},
                "rows_in_window": {"type": "integer"},
                "reference_version": _STRING,
                "thresholds": {"type": "object"},
                "features": {"type": "object"},
                "prediction": {"type": "object"},
                "reason": _STRING,
            },
            ["status"],
        ),
        "ServerMetadata": _object(
            {"name": _STRING, "version": _STRING, "extensions": _STRINGS},
            ["name", "version", "extensions"],
        ),
        "ServerLive": _object({"live": _BOOLEAN}),
        "ServerReady": _object({"ready": _BOOLEAN}),
        "MetadataTensor": tensor,
        "ModelMetadata": _object(
            {
                "name": _STRING,
                "versions": _STRINGS,
                "platform": _STRING,
                "inputs": {"type": "array", "items": _ref("MetadataTensor")},
                "outputs": {"type": "array", "items": _ref("MetadataTensor")},
                "parameters": {"type": "object"},
            },
            ["name", "platform", "inputs", "outputs"],
        ),
        "ModelReady": _object({"name": _STRING, "ready": _BOOLEAN}, ["name", "ready"]),
        "InferenceRequest": _object(
            {
                "id": _STRING,
                "parameters": {"type": "object"},
                "inputs": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 1,
                    "items": _object(
                        {
                            "name": (
                                {"type": "string", "enum": [model.input_name]} if model else _STRING
                            ),
                            "shape": {
                                "type": "array",
                                "minItems": 2,
                                "maxItems": 2,
                                "items": {"type": "integer", "minimum": 1},
                            },
                            "datatype": {"type": "string", "enum": ["FP32", "FP64"]},
                            "parameters": {"type": "object"},
                            "data": {"type": "array", "minItems": 1},
                        },
                        ["name", "shape", "datatype", "data"],
                    ),
                },
                "outputs": {
                    "type": "array",
                    "items": _object({"name": _STRING}, ["name"]),
                },
            },
            ["inputs"],
        ),
        "InferenceResponse": _object(
            {
                "model_name": _STRING,
                "model_version": _STRING,
                "id": _STRING,
                "parameters": {"type": "object"},
                "outputs": {
                    "type": "array",
                    "items": _object(
                        {
                            "name": _STRING,
                            "shape": {"type": "array", "items": {"type": "integer"}},
                            "datatype": _STRING,
                            "data": {"type": "array"},
                        },
                        ["name", "shape", "datatype", "data"],
                    ),
                },
            },
            ["model_name", "outputs"],
        ),
    }
    if model is not None:
        row = _example_row(model)
        schemas["InferenceRequest"]["example"] = {
            "id": "42",
            "inputs": [
                {"name": model.input_name, "shape": [1, model.n_features], "datatype": "FP32",
                 "data": row}
            ],
        }  # fmt: skip
        schemas["PredictRequest"]["example"] = {"features": schemas["Features"]["example"]}
        answer: dict[str, Any] = {
            "prediction": model.classes[0] if model.classes else 152.3,
            "model_version": model.version,
            "inference_time_ms": 0.012,
        }
        if model.is_classifier:
            answer["confidence"] = 0.98
        schemas["PredictResponse"]["example"] = answer
    schemas.update(feedback_schemas())
    return schemas


def _operation(route: Route, security: list[dict[str, list[str]]]) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, answer in sorted(route.answers.items()):
        responses[str(status)] = {
            "description": answer.description,
            "content": {answer.media_type: {"schema": _ref(answer.schema)}},
        }
    errors = set(route.errors)
    if route.needs_key:
        errors.add(401)
    if route.sheddable:
        errors.add(503)
    error_body = {_JSON: {"schema": _ref(route.protocol.error_schema)}}
    for status in sorted(errors - set(route.answers)):
        responses[str(status)] = {"description": ERROR_TEXT[status], "content": error_body}
    operation: dict[str, Any] = {"summary": route.summary, "responses": responses}
    if route.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {_JSON: {"schema": _ref(route.body)}},
        }
    if route.needs_key:
        operation["security"] = security
    return operation


def openapi_document(
    routes: Sequence[Route], model: Model | None, settings: Settings
) -> dict[str, Any]:
    """The document served at /openapi.json."""
    # With keys configured the bearer token is required; without, the routes are open.
    security: list[dict[str, list[str]]] = [{"bearer": []}] if settings.api_keys else [{}]
    paths: dict[str, Any] = {}
    for route in routes:
        if not route.in_schema:
            continue
        item = paths.setdefault(route.path, {})
        names = _PARAMETER.findall(route.path)
        if names:
            item["parameters"] = [
                {"name": name, "in": "path", "required": True, "schema": _STRING} for name in names
            ]
        item[route.method.lower()] = _operation(route, security)
    served = f"{model.name} version {model.version}" if model else "no model yet"
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Model server",
            "version": __version__,
            "description": (
                f"Serves {served}. Inference routes need `Authorization: Bearer <key>` when API "
                "keys are set."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": component_schemas(model, settings),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
