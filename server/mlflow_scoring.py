"""MLflow's scoring protocol, as `mlflow models serve` answers it: /invocations, /ping, /version.

A client of MLflow's scoring server (its `ScoringServerClient`, or the documented `curl` forms)
points here and nothing else changes: the same four JSON request forms and CSV, the same
`{"predictions": [...]}` answer (a classifier's label, a regressor's value, per row, as the
model's scikit-learn form predicts them), the same error body `{"error_code", "message"}` with
400 for every bad input. What differs is documented in docs/protocols.md: NaN (JSON null) is
refused rather than passed to the model, Parquet bodies are refused with 415, and the model's
`params` are ignored (these models take none).
"""

import csv
import io
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from server import __version__
from server.auth import INFERENCE, METADATA, PROBES
from server.dataplane import DataPlane
from server.errors import MLFLOW, InvalidInput, MalformedRequest
from server.inputs import parse_json
from server.lifecycle import Models
from server.model import Model
from server.routes import Answer, Route
from server.settings import Settings
from server.tabular import from_columns, from_instances, from_records
from server.web import JSONResponse, RawResponse, read_body

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_FORMAT_HELP = (
    "The input must be a JSON dictionary with exactly one of the input fields "
    "{'dataframe_split', 'dataframe_records', 'instances', 'inputs'}"
)
_CSV = b"text/csv"
_JSON = b"application/json"
_TEXT = b"text/plain; charset=utf-8"


def mlflow_batch(payload: Any, model: Model, max_batch: int) -> Any:
    """The rows of a JSON scoring request, in any of MLflow's four forms."""
    if not isinstance(payload, dict):
        raise MalformedRequest(f"{_FORMAT_HELP}. Received a {type(payload).__name__}.")
    present = [key for key in FORMATS if key in payload]
    if len(present) != 1:
        raise MalformedRequest(f"{_FORMAT_HELP}. Received dictionary with input fields: {present}.")
    if "params" in payload and not isinstance(payload["params"], dict):
        raise MalformedRequest("params must be a dictionary")
    form = present[0]
    value = payload[form]
    if form == "dataframe_split":
        if not isinstance(value, dict):
            raise MalformedRequest(
                "dataframe_split must be an object with columns and data (pandas' split orient)"
            )
        return from_columns(value.get("columns"), value.get("data"), model, max_batch, form)
    if form == "dataframe_records":
        return from_records(value, model, max_batch, form)
    return from_instances(value, model, max_batch, form)


def csv_batch(body: bytes, model: Model, max_batch: int) -> Any:
    """The rows of a CSV body: a header row of column names, then one row per instance."""
    try:
        lines = list(csv.reader(io.StringIO(body.decode("utf-8"))))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise MalformedRequest(f"the CSV body cannot be read: {exc}") from None
    lines = [line for line in lines if line]
    if len(lines) < 2:
        raise MalformedRequest("the CSV body needs a header row and at least one row")
    header, rows = lines[0], lines[1:]
    try:
        values = [[float(cell) for cell in row] for row in rows]
    except ValueError as exc:
        raise InvalidInput(f"every CSV value must be a number: {str(exc)[:200]}") from None
    return from_columns(header, values, model, max_batch, "csv")


def mlflow_routes(settings: Settings, models: Models, plane: DataPlane) -> list[Route]:
    max_body, max_batch = settings.max_body_bytes, settings.max_batch
    version = __version__.encode()

    async def invocations(request: Request) -> Response:
        body, media_type = await read_body(request, max_body, (_JSON, _CSV))
        choice = plane.pick()
        model = choice.model
        if media_type == _CSV:
            rows = csv_batch(body, model, max_batch)
        else:
            rows = mlflow_batch(parse_json(body), model, max_batch)
        result = await plane.coalescer.score(choice, rows, request.scope["request_id"])
        return JSONResponse(
            {"predictions": result.answers},
            raw_headers=((b"x-model-version", model.version.encode()),),
        )

    async def ping(request: Request) -> Response:
        plane.champion_model  # noqa: B018 - raises ModelNotReady (503) while nothing is served
        if not models.ready:
            return JSONResponse(MLFLOW.error("shutting down", 503), status_code=503)
        return RawResponse(b"\n", _TEXT)

    async def version_endpoint(request: Request) -> Response:
        return RawResponse(version, _TEXT)

    def route(method: str, path: str, endpoint: Any, summary: str, **kwargs: Any) -> Route:
        return Route(method, path, endpoint, MLFLOW, summary, **kwargs)

    return [
        route(
            "POST", "/invocations", invocations,
            "MLflow scoring: dataframe_split, dataframe_records, instances or inputs (or CSV)",
            answers={200: Answer("MlflowPredictions", "One prediction per row")},
            body="MlflowRequest", errors=(400, 408, 413, 415), group=INFERENCE,
        ),
        route(
            "GET", "/ping", ping, "MLflow's health check: 200 once a model is served",
            answers={200: Answer("Text", "Ready", "text/plain")}, errors=(503,),
            sheddable=False, group=PROBES,
        ),
        route(
            "GET", "/version", version_endpoint, "The server's version, as plain text",
            answers={200: Answer("Text", "The version", "text/plain")}, group=METADATA,
        ),
    ]  # fmt: skip
