"""/openapi.json and an interactive /docs page whose assets ship with the swagger-ui-bundle package."""

from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from server.model_manager import Serving
from server.openapi import openapi_document
from server.routing import TemplatedRoute
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


def docs_routes(settings: Settings, serving: Serving) -> list[BaseRoute]:
    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_document(serving.champion.model, settings))

    async def page(request: Request) -> Response:
        return HTMLResponse(_PAGE)

    return [
        TemplatedRoute("/openapi.json", openapi, methods=["GET"]),
        TemplatedRoute("/docs", page, methods=["GET"]),
        Mount("/docs/assets", StaticFiles(directory=Path(swagger_ui_path)), name="docs-assets"),
    ]
