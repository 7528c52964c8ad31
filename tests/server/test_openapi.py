"""The OpenAPI document is generated from the route table: nothing listed by hand."""

from starlette.requests import Request
from starlette.responses import Response

from server.errors import OIP, SIMPLE
from server.openapi import openapi_document
from server.routes import Answer, Route
from server.settings import Settings


async def endpoint(request: Request) -> Response:
    return Response()


ROUTES = [
    Route("GET", "/things", endpoint, SIMPLE, "List things",
          answers={200: Answer("Health", "things")}, sheddable=False),
    Route("POST", "/v2/models/{name}/versions/{version}/infer", endpoint, OIP, "Infer",
          answers={200: Answer("InferenceResponse", "ok")}, body="InferenceRequest",
          errors=(400, 404), needs_key=True),
    Route("GET", "/hidden", endpoint, SIMPLE, "Not documented",
          answers={200: Answer("Health", "x")}, in_schema=False),
]  # fmt: skip


def test_paths_methods_and_parameters_come_from_the_routes() -> None:
    document = openapi_document(ROUTES, None, Settings())
    assert set(document["paths"]) == {"/things", "/v2/models/{name}/versions/{version}/infer"}
    infer = document["paths"]["/v2/models/{name}/versions/{version}/infer"]
    assert [p["name"] for p in infer["parameters"]] == ["name", "version"]
    operation = infer["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/InferenceRequest"
    }
    assert sorted(operation["responses"]) == ["200", "400", "401", "404", "503"]
    error = operation["responses"]["404"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/InferenceError"}
    assert sorted(document["paths"]["/things"]["get"]["responses"]) == ["200"]  # never shed


def test_security_follows_the_configured_keys() -> None:
    open_doc = openapi_document(ROUTES, None, Settings())
    keyed = openapi_document(ROUTES, None, Settings(api_keys=frozenset({"k"})))
    path = "/v2/models/{name}/versions/{version}/infer"
    assert open_doc["paths"][path]["post"]["security"] == [{}]
    assert keyed["paths"][path]["post"]["security"] == [{"bearer": []}]
    assert "security" not in keyed["paths"]["/things"]["get"]


def test_every_referenced_schema_exists() -> None:
    document = openapi_document(ROUTES, None, Settings())
    text = str(document["paths"])
    schemas = document["components"]["schemas"]
    for name in ("Health", "InferenceResponse", "InferenceRequest", "InferenceError", "Error"):
        assert name in schemas
    assert "#/components/schemas/" in text
