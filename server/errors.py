"""The server's exception types, each protocol's error shape, and the one mapping between them.

Every layer that answers an error (endpoints, the dispatcher, load shedding, Starlette's 404 and
405) builds its body through `Protocol.error`, so a protocol's error shape is written once.
"""

from collections.abc import Callable
from dataclasses import dataclass
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
    body: Callable[[str], dict[str, Any]]  # message -> error body
    prefix: str | None = None  # paths under this prefix belong to it, matched or not

    def error(self, message: str) -> dict[str, Any]:
        return self.body(message)


# The original platform's JSON API: {"detail": "..."}.
SIMPLE = Protocol("simple", "Error", lambda message: {"detail": message})
# The Open Inference Protocol: {"error": "..."}, as its REST specification says.
OIP = Protocol("oip", "InferenceError", lambda message: {"error": message}, prefix="/v2")
PROTOCOLS = (SIMPLE, OIP)


def protocol_for_path(path: str) -> Protocol:
    """The protocol a path belongs to, for answers to paths that matched no route."""
    for protocol in PROTOCOLS:
        prefix = protocol.prefix
        if prefix is not None and (path == prefix or path.startswith(prefix + "/")):
            return protocol
    return SIMPLE
