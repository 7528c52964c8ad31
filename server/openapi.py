"""The OpenAPI 3 document for every route, with the loaded model's features in its schemas."""

import math
from typing import Any

import numpy as np

from server import __version__
from server.auth import needs_key
from server.model import Model
from server.settings import Settings

_JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _body(schema: dict[str, Any], description: str, example: Any = None) -> dict[str, Any]:
    content: dict[str, Any] = {"schema": schema}
    if example is not None:
        content["example"] = example
    return {"description": description, "content": {_JSON: content}}


def _errors(*codes: int, key: str = "detail") -> dict[str, Any]:
    text = {
        400: "Malformed JSON, or a missing or unknown feature",
        401: "Missing or invalid API key",
        404: "Unknown model or version",
        408: "The body did not arrive within BODY_TIMEOUT_SECONDS",
        413: "Body larger than MAX_BODY_BYTES or more rows than MAX_BATCH",
        415: "Content-Type is not JSON",
        422: "Wrong body shape, or values that are not finite numbers",
        503: "No model loaded yet, shutting down, or over the concurrency limit",
    }
    schema = _ref("Error" if key == "detail" else "InferenceError")
    return {str(c): _body(schema, text[c]) for c in codes}


def _largest_accepted(dtype: type) -> float:
    """The largest JSON number that is still finite once cast to `dtype`.

    A double a little past float32's maximum rounds down to it rather than to infinity, so the
    server accepts it; the schema says exactly that, so generated tests agree with the server.
    """
    info = np.finfo(dtype)
    if info.bits == 64:
        return float(info.max)
    # Half a unit in the last place above the maximum rounds (to even) to infinity.
    ulp = math.ldexp(1.0, info.maxexp - 1 - info.nmant)
    return math.nextafter(float(info.max) + ulp / 2, 0.0)


def _number_schema(model: Model | None) -> dict[str, Any]:
    """A feature value: finite, and within the range of the model's input type."""
    limit = _largest_accepted(model.input_dtype if model else np.float32)
    return {"type": "number", "minimum": -limit, "maximum": limit}


def _features_schema(model: Model | None) -> dict[str, Any]:
    if model is None:
        return {"type": "object", "additionalProperties": _number_schema(model)}
    example = model.metadata.get("input_example") or [[0.0] * model.n_features]
    return {
        "type": "object",
        "properties": {name: _number_schema(model) for name in model.features},
        "required": list(model.features),
        "additionalProperties": False,
        "example": dict(zip(model.features, example[0], strict=False)),
    }


def openapi_document(model: Model | None, settings: Settings) -> dict[str, Any]:
    """The document served at /openapi.json."""
    prediction: dict[str, Any] = {
        "type": "object",
        "properties": {
            "prediction": {"oneOf": [{"type": "string"}, {"type": "number"}]},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        },
        "required": ["prediction"],
    }
    schemas: dict[str, Any] = {
        "Error": {
            "type": "object",
            "properties": {"detail": {"type": "string"}},
            "required": ["detail"],
        },
        "InferenceError": {
            "type": "object",
            "properties": {"error": {"type": "string"}},
            "required": ["error"],
        },
        "Features": _features_schema(model),
        "PredictRequest": {
            "oneOf": [
                {
                    "type": "object",
                    "properties": {"features": _ref("Features")},
                    "required": ["features"],
                    "additionalProperties": False,
                },
                {
                    "type": "object",
                    "properties": {
                        "instances": {
                            "type": "array",
                            "items": _ref("Features"),
                            "minItems": 1,
                            "maxItems": settings.max_batch,
                        }
                    },
                    "required": ["instances"],
                    "additionalProperties": False,
                },
            ]
        },
        "PredictResponse": {
            "type": "object",
            "properties": {
                **prediction["properties"],
                "predictions": {"type": "array", "items": prediction},
                "model_version": {"type": "string"},
                "inference_time_ms": {"type": "number"},
            },
            "required": ["model_version", "inference_time_ms"],
        },
        "ModelInfo": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "version": {"type": "string"},
                "framework": {"type": "string"},
                "task": {"type": "string", "enum": ["classification", "regression"]},
                "features": {"type": "array", "items": {"type": "string"}},
                "classes": {"type": "array", "items": {"type": "string"}},
                "source": {"type": "string", "enum": ["registry", "fallback", "local"]},
                "model_uri": {"type": "string"},
                "loaded_at": {"type": "string", "format": "date-time"},
                "variant": {"type": "string"},
                "metrics": {"type": "object", "additionalProperties": {"type": "number"}},
                "challenger": {"type": "object"},
            },
            "required": ["name", "version", "framework", "task", "features", "source"],
        },
        "Drift": {
            "type": "object",
            "properties": {
                "status": {"type": "string"},
                "window_size": {"type": "integer"},
                "rows_in_window": {"type": "integer"},
                "reference_version": {"type": "string"},
                "features": {"type": "object"},
                "prediction": {"type": "object"},
                "reason": {"type": "string"},
            },
            "required": ["status"],
        },
        "MetadataTensor": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "datatype": {"type": "string"},
                "shape": {"type": "array", "items": {"type": "integer"}},
            },
            "required": ["name", "datatype", "shape"],
        },
        "InferenceRequest": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "parameters": {"type": "object"},
                "inputs": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 1,
                    "items": {
                        "type": "object",
                        "properties": {
                            "name": (
                                {"type": "string", "enum": [model.input_name]}
                                if model
                                else {"type": "string"}
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
                        "required": ["name", "shape", "datatype", "data"],
                    },
                },
                "outputs": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"name": {"type": "string"}},
                        "required": ["name"],
                    },
                },
            },
            "required": ["inputs"],
        },
        "InferenceResponse": {
            "type": "object",
            "properties": {
                "model_name": {"type": "string"},
                "model_version": {"type": "string"},
                "id": {"type": "string"},
                "parameters": {"type": "object"},
                "outputs": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string"},
                            "shape": {"type": "array", "items": {"type": "integer"}},
                            "datatype": {"type": "string"},
                            "data": {"type": "array"},
                        },
                        "required": ["name", "shape", "datatype", "data"],
                    },
                },
            },
            "required": ["model_name", "outputs"],
        },
    }
    if model is not None:
        example_row = (model.metadata.get("input_example") or [[0.0] * model.n_features])[0]
        schemas["InferenceRequest"]["example"] = {
            "id": "42",
            "inputs": [
                {
                    "name": model.input_name,
                    "shape": [1, model.n_features],
                    "datatype": "FP32",
                    "data": example_row,
                }
            ],
        }

    def get(summary: str, ok: dict[str, Any], *errors: int, key: str = "detail") -> dict[str, Any]:
        return {"get": {"summary": summary, "responses": {"200": ok, **_errors(*errors, key=key)}}}

    # With keys configured the bearer token is required; without, the routes are open.
    security: list[dict[str, list[str]]] = [{"bearer": []}] if settings.api_keys else [{}]
    name_param = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    version_param = {
        "name": "version",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
    }
    infer_op = {
        "summary": "Open Inference Protocol inference",
        "requestBody": {"required": True, "content": {_JSON: {"schema": _ref("InferenceRequest")}}},
        "responses": {
            "200": _body(_ref("InferenceResponse"), "Output tensors"),
            **_errors(400, 401, 404, 408, 413, 415, 503, key="error"),
        },
        "security": security,
    }
    model_metadata = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": _ref("MetadataTensor")},
            "outputs": {"type": "array", "items": _ref("MetadataTensor")},
            "parameters": {"type": "object"},
        },
        "required": ["name", "platform", "inputs", "outputs"],
    }
    example_features = schemas["Features"].get("example", {})
    example_answer: dict[str, Any] = {
        "prediction": model.classes[0] if model and model.classes else 152.3,
        "model_version": model.version if model else "1",
        "inference_time_ms": 0.012,
    }
    if model is not None and model.is_classifier:
        example_answer["confidence"] = 0.98
    status_schema = {"type": "object", "properties": {"status": {"type": "string"}}}
    ready_schema = {
        "type": "object",
        "properties": {
            "status": {"type": "string"},
            "model_loaded": {"type": "boolean"},
            "reason": {"type": "string"},
        },
        "required": ["status", "model_loaded"],
    }
    paths: dict[str, Any] = {
        "/health": get(
            "Liveness", _body(status_schema, "The process is up", {"status": "healthy"})
        ),
        "/ready": {
            "get": {
                "summary": "Readiness: a model is loaded and the server is not shutting down",
                "responses": {
                    "200": _body(ready_schema, "Ready", {"status": "ready", "model_loaded": True}),
                    "503": _body(ready_schema, "Not ready, with the reason"),
                },
            }
        },
        "/predict": {
            "post": {
                "summary": "Predict one row (features) or a batch (instances)",
                "requestBody": {
                    "required": True,
                    "content": {
                        _JSON: {
                            "schema": _ref("PredictRequest"),
                            **({"example": {"features": example_features}} if model else {}),
                        }
                    },
                },
                "responses": {
                    "200": _body(
                        _ref("PredictResponse"),
                        "One result, or one per instance",
                        example_answer,
                    ),
                    **_errors(400, 401, 408, 413, 415, 422, 503),
                },
                "security": security,
            }
        },
        "/model/info": get("The model being served", _body(_ref("ModelInfo"), "Model"), 503),
        "/drift": get("Drift of live traffic against training", _body(_ref("Drift"), "PSI"), 503),
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {
                        "description": "Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/v2": get(
            "Server metadata",
            _body(
                {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "version": {"type": "string"},
                        "extensions": {"type": "array", "items": {"type": "string"}},
                    },
                    "required": ["name", "version", "extensions"],
                },
                "Server",
            ),
        ),
        "/v2/health/live": get(
            "Server live",
            _body({"type": "object", "properties": {"live": {"type": "boolean"}}}, "Live"),
        ),
        "/v2/health/ready": {
            "get": {
                "summary": "Server ready",
                "responses": {
                    code: _body(
                        {"type": "object", "properties": {"ready": {"type": "boolean"}}}, text
                    )
                    for code, text in (("200", "Ready"), ("503", "Not ready"))
                },
            }
        },
    }
    for prefix, params in (
        ("/v2/models/{name}", [name_param]),
        ("/v2/models/{name}/versions/{version}", [name_param, version_param]),
    ):
        paths[prefix] = {
            "parameters": params,
            **get("Model metadata", _body(model_metadata, "Model"), 404, 503, key="error"),
        }
        paths[f"{prefix}/ready"] = {
            "parameters": params,
            **get(
                "Model ready",
                _body(
                    {
                        "type": "object",
                        "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}},
                        "required": ["name", "ready"],
                    },
                    "Ready",
                ),
                404,
                503,
                key="error",
            ),
        }
        paths[f"{prefix}/infer"] = {"parameters": params, "post": infer_op}
    for template, item in paths.items():  # metadata, docs and metrics as OPEN_ROUTES decides
        operation = item.get("get")
        if operation is not None and needs_key(settings, template):
            operation["security"] = [{"bearer": []}]
            operation["responses"].update(
                _errors(401, key="error" if template.startswith("/v2") else "detail")
            )
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Model server",
            "version": __version__,
            "description": (
                "Serves "
                + (f"{model.name} version {model.version}" if model else "no model yet")
                + ". Routes marked with the bearer scheme need `Authorization: Bearer <key>`."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
