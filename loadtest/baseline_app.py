"""The yardstick: a Starlette endpoint returning constant JSON on the same uvicorn stack.

`/predict` is measured against this in the same run, so the ratio says what the model and our
request handling cost on top of the bare framework.
"""

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

_BODY = orjson.dumps({"prediction": "setosa", "confidence": 1.0, "model_version": "1"})


async def constant(request: Request) -> Response:
    await request.body()
    return Response(_BODY, media_type="application/json")


app = Starlette(routes=[Route("/predict", constant, methods=["POST"])])
