"""The server's exception types, each protocol's error shape, and the one mapping between them.

Every layer that answers an error (endpoints, the dispatcher, load shedding, Starlette's 404 and
405) builds its body through `Protocol.error`, so a protocol's error shape is written once.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


class ServerError(Exception):
    """Base: an error whose message is safe to show to the client."""

    status_code = 500

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class MalformedRequest(ServerError):
    """The body is not JSON, or names a feature the model does not have or lacks one."""

    status_code = 400


class Unauthorized(ServerError):
    status_code = 401


class NotFound(ServerError):
    status_code = 404


class RequestTimeout(ServerError):
    """The body did not arrive within BODY_TIMEOUT_SECONDS."""

    status_code = 408


class ClientClosedRequest(ServerError):
    """The client hung up before sending the whole body; nginx's 499, for metrics and logs."""

    status_code = 499


class PayloadTooLarge(ServerError):
    """The body exceeds MAX_BODY_BYTES or carries more rows than MAX_BATCH."""

    status_code = 413


class UnsupportedMediaType(ServerError):
    status_code = 415


class InvalidInput(ServerError):
    """The JSON is well-formed but not of the expected shape or types."""

    status_code = 422


class ModelNotReady(ServerError):
    status_code = 503


class ModelLoadError(Exception):
    """A model could not be fetched, loaded, validated or warmed up (never shown to clients)."""


# Headers some statuses must carry, whichever protocol answers.
STATUS_HEADERS: dict[int, dict[str, str]] = {
    401: {"www-authenticate": 'Bearer realm="model-server"'},
    # The rest of a trickled body may still be on its way: do not read it.
    408: {"connection": "close"},
    503: {},
}
SHED_MESSAGE = "the server is at its concurrency limit; retry shortly"
INTERNAL_MESSAGE = "internal error; the server log has the details"


@dataclass(frozen=True)
class Protocol:
    """A family of routes that share an error shape (and an OpenAPI error schema)."""

    name: str
    error_schema: str  # the OpenAPI component of its error body
    body: Callable[[str, int], dict[str, Any]]  # (message, status) -> error body
    prefix: str | None = None  # paths under this prefix belong to it, matched or not
    paths: frozenset[str] = frozenset()  # and these paths, matched or not
    # Statuses this protocol answers differently: MLflow and KServe answer every bad input 400.
    statuses: Mapping[int, int] = field(default_factory=dict)

    def status(self, status: int) -> int:
        """The status this protocol answers for one of the server's own."""
        return self.statuses.get(status, status)

    def error(self, message: str, status: int = 400) -> dict[str, Any]:
        """The error body for one of the server's statuses (before `status` maps it)."""
        return self.body(message, status)

    def owns(self, path: str) -> bool:
        prefix = self.prefix
        if prefix is not None and (path == prefix or path.startswith(prefix + "/")):
            return True
        return path in self.paths


# The original platform's JSON API: {"detail": "..."}.
SIMPLE = Protocol("simple", "Error", lambda message, status: {"detail": message})
# The Open Inference Protocol: {"error": "..."}, as its REST specification says.
OIP = Protocol("oip", "InferenceError", lambda message, status: {"error": message}, prefix="/v2")
# MLflow's scoring server (`mlflow models serve`): an MlflowException's JSON, whose error_code
# names the status (mlflow/exceptions.py, ERROR_CODE_TO_HTTP_STATUS); bad input is always 400.
MLFLOW_ERROR_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    404: "ENDPOINT_NOT_FOUND",
    405: "ENDPOINT_NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    413: "RESOURCE_EXHAUSTED",
    415: "BAD_REQUEST",
    422: "INVALID_PARAMETER_VALUE",
    499: "CANCELLED",
    503: "TEMPORARILY_UNAVAILABLE",
}
MLFLOW = Protocol(
    "mlflow",
    "MlflowError",
    lambda message, status: {
        "error_code": MLFLOW_ERROR_CODES.get(status, "INTERNAL_ERROR"),
        "message": message,
    },
    paths=frozenset({"/invocations", "/ping", "/version"}),
    statuses={422: 400},
)
# KServe's V1 protocol, as its Python model server answers it: {"error": "..."}, 400 for any bad
# input, 404 for an unknown model, 503 for one not ready (kserve/errors.py).
KSERVE_V1 = Protocol(
    "kserve-v1",
    "V1Error",
    lambda message, status: {"error": message},
    prefix="/v1",
    statuses={422: 400},
)
PROTOCOLS = (SIMPLE, OIP, MLFLOW, KSERVE_V1)


def protocol_for_path(path: str) -> Protocol:
    """The protocol a path belongs to, for answers to paths that matched no route."""
    for protocol in PROTOCOLS:
        if protocol.owns(path):
            return protocol
    return SIMPLE
