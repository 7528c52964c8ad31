"""The server's own exception types; app.py maps them to status codes in one place."""


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


class Overloaded(ServerError):
    """More requests in flight than MAX_CONCURRENCY."""

    status_code = 503


class ModelLoadError(Exception):
    """A model could not be fetched, loaded, validated or warmed up (never shown to clients)."""
