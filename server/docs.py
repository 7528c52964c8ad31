"""/openapi.json and an interactive /docs page whose assets ship with the swagger-ui-bundle package."""

from collections.abc import Callable, Sequence
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from server.dataplane import DataPlane
from server.errors import SIMPLE
from server.openapi import openapi_document
from server.routes import Answer, Route
from server.settings import Settings
from server.web import JSONResponse

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Model server API</title>
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true});
  </script>
</body>
</html>
"""


def docs_routes(
    settings: Settings, plane: DataPlane, table: Callable[[], Sequence[Route]]
) -> list[Route]:
    """The document (built from the route table and the served model) and its page."""

    async def openapi(request: Request) -> Response:
        champion = plane.champion
        return JSONResponse(
            openapi_document(table(), champion.model if champion else None, settings)
        )

    async def page(request: Request) -> Response:
        return HTMLResponse(_PAGE)

    return [
        Route("GET", "/openapi.json", openapi, SIMPLE, "This document",
              answers={200: Answer("OpenAPI", "The OpenAPI 3 document")}, in_schema=False),
        Route("GET", "/docs", page, SIMPLE, "Interactive API page",
              answers={200: Answer("Page", "HTML", "text/html")}, in_schema=False),
    ]  # fmt: skip


def docs_assets() -> Mount:
    """Swagger UI's files, served by Starlette (not dispatched: they are not API routes)."""
    return Mount("/docs/assets", StaticFiles(directory=Path(swagger_ui_path)), name="docs-assets")
