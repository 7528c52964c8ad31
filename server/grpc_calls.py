"""The gRPC methods and what every call goes through, whichever transport carries it.

`inference.GRPCInferenceService` (ServerLive, ServerReady, ModelReady, ServerMetadata,
ModelMetadata, ModelInfer) as KServe and Triton define it, and `grpc.health.v1.Health` (Check,
List) for Kubernetes' gRPC probes, over the data plane HTTP uses (models, the champion/challenger
split, coalescing, drift, shadow). `Calls.run` is a call's life: the shed check and the key
check (`authorization: Bearer <key>` metadata) before the message is read, so a refused call
is refused without receiving it; the concurrency slot held from before the read until the call
ends; the message read within BODY_TIMEOUT_SECONDS and decoded (one that does not decode is
INVALID_ARGUMENT); errors mapped to statuses in one place; the request metric (method `GRPC`,
the RPC's path as the route, the HTTP status its outcome corresponds to).

The transports (server/grpc_server.py for grpcio, server/grpc_builtin.py for our own HTTP/2)
only carry bytes: they know nothing of models or keys. Tensors arrive as `raw_input_contents`
(what Triton's client sends) or typed `contents`; outputs are answered the way inputs came.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError, Message

from server import __version__
from server.auth import METADATA, ApiKeys, needs_key
from server.dataplane import Choice, DataPlane
from server.errors import (
    INTERNAL_MESSAGE,
    SHED_MESSAGE,
    MalformedRequest,
    PayloadTooLarge,
    RequestTimeout,
    ServerError,
)
from server.lifecycle import Models
from server.limits import Concurrency
from server.metrics import Metrics
from server.model import Model
from server.oip import EXTENSIONS, SERVER_NAME, model_metadata
from server.protos import grpc_predict_v2_pb2 as pb
from server.protos import health_pb2
from server.request_ids import new_request_id, usable
from server.settings import Settings
from server.tensors import check_input, datatype, output_bytes, rows_from_bytes, rows_from_json

log = logging.getLogger("server.grpc")
SERVICE = "inference.GRPCInferenceService"
HEALTH_SERVICE = "grpc.health.v1.Health"
METHOD_LABEL = "GRPC"

# gRPC status codes (grpc/doc/statuscodes.md), as numbers: the builtin transport sends them.
OK, CANCELLED, INVALID_ARGUMENT, DEADLINE_EXCEEDED, NOT_FOUND = 0, 1, 3, 4, 5
RESOURCE_EXHAUSTED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, UNAUTHENTICATED = 8, 12, 13, 14, 16
# The gRPC status for each HTTP status the server's errors carry.
GRPC_CODES: dict[int, int] = {
    400: INVALID_ARGUMENT,
    401: UNAUTHENTICATED,
    404: NOT_FOUND,
    408: DEADLINE_EXCEEDED,
    413: RESOURCE_EXHAUSTED,
    415: INVALID_ARGUMENT,
    422: INVALID_ARGUMENT,
    499: CANCELLED,
    501: UNIMPLEMENTED,
    503: UNAVAILABLE,
}
# Typed tensor contents, by datatype: the field that holds the values.
_CONTENTS = {"FP32": "fp32_contents", "FP64": "fp64_contents", "INT64": "int64_contents",
             "INT32": "int_contents"}  # fmt: skip
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
CLIENT_CLOSED = 499  # as HTTP counts a client that hung up


@dataclass(slots=True)
class CallMetadata:
    """What a handler sees of its call: the metadata it reads, the trailers it adds."""

    authorization: str = ""
    request_id: str | None = None  # the client's x-request-id, when usable
    trailers: list[tuple[str, str]] = field(default_factory=list)

    def take(self, key: str, value: str) -> None:
        """Keep one metadata entry if it is one the calls read."""
        if key == "authorization":
            self.authorization = value
        elif key == "x-request-id" and usable(value.encode("latin-1", "replace")):
            self.request_id = value


Handler = Callable[[Any, CallMetadata], Awaitable[Message]]
# Reads a call's one message: its bytes, or None when the call ended without a whole one.
Reader = Callable[[], Awaitable[bytes | None]]


@dataclass(frozen=True, slots=True)
class Method:
    """One RPC: its handler, its request message type, and the checks it gets."""

    path: str  # "/<service>/<method>", the route in the metrics
    handler: Handler
    message: type[Message]
    needs_key: bool
    sheddable: bool  # probes are never shed


@dataclass(frozen=True, slots=True)
class Outcome:
    """A call's answer: its gRPC status, message, and (with OK) the serialized response."""

    code: int
    message: str = ""
    payload: bytes | None = None


def infer_rows(request: pb.ModelInferRequest, model: Model, max_batch: int) -> np.ndarray:
    """The batch of a ModelInfer request, from raw bytes or typed contents."""
    if len(request.inputs) != 1:
        raise MalformedRequest(f"inputs must hold exactly one tensor, {model.input_name!r}")
    tensor = request.inputs[0]
    rows, dtype = check_input(tensor.name, tensor.datatype, list(tensor.shape), model, max_batch)
    raw = request.raw_input_contents
    if raw:
        if len(raw) != 1:
            raise MalformedRequest(
                f"raw_input_contents holds {len(raw)} tensors; one input has one"
            )
        if tensor.HasField("contents"):
            raise MalformedRequest("an input is sent either as raw_input_contents or as contents")
        return rows_from_bytes(raw[0], dtype, rows, model)
    values = getattr(tensor.contents, _CONTENTS[tensor.datatype])
    return rows_from_json(
        list(values), dtype, rows, model, f"contents.{_CONTENTS[tensor.datatype]}"
    )


def requested_outputs(request: pb.ModelInferRequest, model: Model) -> list[str]:
    """The outputs asked for (all of them when none is named), each named once."""
    if not request.outputs:
        return model.output_names
    names = []
    for output in request.outputs:
        if output.name not in model.output_names:
            raise MalformedRequest(
                f"unknown output {output.name[:200]!r}; this model has {model.output_names}"
            )
        if "class_count" in output.parameters and output.parameters["class_count"].int64_param:
            raise MalformedRequest(
                "the classification extension (class_count) is not supported; "
                "ask for the probabilities output"
            )
        names.append(output.name)
    if len(set(names)) != len(names):
        raise MalformedRequest("an output is named twice in outputs")
    return names


def _typed_contents(tensor: np.ndarray, dtype: str, contents: pb.InferTensorContents) -> None:
    name = _CONTENTS.get(dtype)
    if name is None:
        raise TypeError(f"no typed contents for {dtype}")
    getattr(contents, name).extend(tensor.ravel().tolist())


class _UnknownService(ServerError):
    """Health checking asked about a service this server does not have (NOT_FOUND)."""

    status_code = 404

    def __init__(self, service: str) -> None:
        super().__init__(f"unknown service {service[:200]!r}; this server has {SERVICE!r}")


def methods(settings: Settings, models: Models, plane: DataPlane) -> dict[str, Method]:
    """Every RPC the server answers, by path."""
    max_batch = settings.max_batch

    async def server_live(request: pb.ServerLiveRequest, call: CallMetadata) -> Message:
        return pb.ServerLiveResponse(live=True)

    async def server_ready(request: pb.ServerReadyRequest, call: CallMetadata) -> Message:
        return pb.ServerReadyResponse(ready=models.ready)

    async def server_metadata(request: pb.ServerMetadataRequest, call: CallMetadata) -> Message:
        return pb.ServerMetadataResponse(
            name=SERVER_NAME, version=__version__, extensions=EXTENSIONS
        )

    async def model_ready(request: pb.ModelReadyRequest, call: CallMetadata) -> Message:
        plane.find(request.name, request.version or None)
        return pb.ModelReadyResponse(ready=True)

    async def metadata(request: pb.ModelMetadataRequest, call: CallMetadata) -> Message:
        model = plane.find(request.name, request.version or None).model
        document = model_metadata(model, plane.versions(model.name))
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=document["name"],
            versions=document["versions"],
            platform=document["platform"],
            inputs=[tensor(**t) for t in document["inputs"]],
            outputs=[tensor(**t) for t in document["outputs"]],
        )

    def choose(request: pb.ModelInferRequest) -> Choice:
        version = request.model_version or None
        if version is None:  # the same champion/challenger split as HTTP
            choice = plane.pick()
            if choice.model.name == request.model_name:
                return choice
        return plane.find(request.model_name, version)

    async def model_infer(request: pb.ModelInferRequest, call: CallMetadata) -> Message:
        given = call.request_id
        # The id the prediction is recorded under (for feedback), answered in the trailers.
        request_id = given if given is not None else new_request_id().decode()
        call.trailers.append(("x-request-id", request_id))
        choice = choose(request)
        model = choice.model
        rows = infer_rows(request, model, max_batch)
        names = requested_outputs(request, model)
        result = await plane.coalescer.score(choice, rows, request_id.encode())
        response = pb.ModelInferResponse(
            model_name=model.name, model_version=model.version, id=request.id
        )
        raw = bool(request.raw_input_contents)
        for name in names:
            tensor = result.raw[model.output_names.index(name)]
            dtype = datatype(model.output_dtypes[name])
            output = response.outputs.add(name=name, datatype=dtype, shape=tensor.shape)
            if raw:
                response.raw_output_contents.append(output_bytes(tensor))
            else:
                _typed_contents(tensor, dtype, output.contents)
        return response

    def status(service: str) -> Any:
        if service not in ("", SERVICE):
            raise _UnknownService(service)
        return _SERVING if models.ready else _NOT_SERVING

    async def check(request: health_pb2.HealthCheckRequest, call: CallMetadata) -> Message:
        return health_pb2.HealthCheckResponse(status=status(request.service))

    async def listing(request: health_pb2.HealthListRequest, call: CallMetadata) -> Message:
        response = health_pb2.HealthListResponse()
        for service in ("", SERVICE):
            response.statuses[service].status = status(service)
        return response

    # As over HTTP: inference always needs a key, metadata unless OPEN_ROUTES names it.
    metadata_key = needs_key(METADATA, settings.open_routes)
    table: list[tuple[str, Handler, type[Message], bool, bool]] = [
        (f"{SERVICE}/ServerLive", server_live, pb.ServerLiveRequest, False, False),
        (f"{SERVICE}/ServerReady", server_ready, pb.ServerReadyRequest, False, False),
        (f"{SERVICE}/ModelReady", model_ready, pb.ModelReadyRequest, metadata_key, True),
        (f"{SERVICE}/ServerMetadata", server_metadata, pb.ServerMetadataRequest, metadata_key,
         True),
        (f"{SERVICE}/ModelMetadata", metadata, pb.ModelMetadataRequest, metadata_key, True),
        (f"{SERVICE}/ModelInfer", model_infer, pb.ModelInferRequest, True, True),
        (f"{HEALTH_SERVICE}/Check", check, health_pb2.HealthCheckRequest, False, False),
        (f"{HEALTH_SERVICE}/List", listing, health_pb2.HealthListRequest, False, False),
    ]  # fmt: skip
    return {
        f"/{name}": Method(f"/{name}", handler, message, key, sheddable)
        for name, handler, message, key, sheddable in table
    }


class Calls:
    """Runs calls: the checks, the read, the handler, the status and the metric."""

    def __init__(
        self, settings: Settings, keys: ApiKeys, metrics: Metrics, concurrency: Concurrency
    ) -> None:
        self.keys = keys
        self.metrics = metrics
        self.concurrency = concurrency
        self.body_timeout = settings.body_timeout_seconds or None
        self.max_body_bytes = settings.max_body_bytes

    async def run(
        self, method: Method, call: CallMetadata, read: Reader, waits: bool = True
    ) -> Outcome:
        """The call's outcome; raises CancelledError only when the call itself is cancelled.

        `waits`: whether `read` may have to wait for the message (False: the transport has it
        whole already, and no deadline timer is set for it).
        """
        started = time.perf_counter()
        observe = self.metrics.observe_request
        concurrency = self.concurrency
        if method.sheddable and concurrency.full():
            self.metrics.shed.inc()
            observe(METHOD_LABEL, "shed", 503, time.perf_counter() - started)
            return Outcome(UNAVAILABLE, SHED_MESSAGE)
        # A call that may be shed holds its slot from before its message is read; a probe
        # takes one only once its message is in, so unread probes never shed inference.
        counted = method.sheddable
        if counted:
            concurrency.in_flight += 1
        status = 500
        try:
            if method.needs_key and self.keys.enabled:
                self.keys.check_authorization(call.authorization)
            request = await self._read(method.message, read, waits)
            if not counted:
                concurrency.in_flight += 1
                counted = True
            answer = await method.handler(request, call)
            status = 200
            return Outcome(OK, "", answer.SerializeToString())
        except ServerError as exc:
            status = exc.status_code
            return Outcome(GRPC_CODES.get(status, INTERNAL), exc.detail)
        except asyncio.CancelledError:  # the client went away (or the grace ran out)
            status = CLIENT_CLOSED
            raise
        except Exception as exc:  # a bug: logged, and answered without its details
            log.error("unhandled error", exc_info=exc, extra={"rpc": method.path})
            return Outcome(INTERNAL, INTERNAL_MESSAGE)
        finally:
            if counted:
                concurrency.in_flight -= 1
            observe(METHOD_LABEL, method.path, status, time.perf_counter() - started)

    async def _read(self, message: type[Message], read: Reader, waits: bool) -> Message:
        """The call's one request message within the body deadline, decoded."""
        if not waits or self.body_timeout is None:
            raw = await read()
        else:
            try:
                async with asyncio.timeout(self.body_timeout):  # a timer, not a task
                    raw = await read()
            except TimeoutError:
                raise RequestTimeout(
                    f"the request message did not arrive within {self.body_timeout:g} seconds"
                ) from None
        if raw is None:
            # grpc reads the same end of a call whether its message was too large (and
            # answered already) or the client sent none; the first is the one that happens.
            raise PayloadTooLarge(
                f"no {message.__name__} arrived whole: it was larger than the limit of "
                f"{self.max_body_bytes} bytes, or the call ended without one"
            )
        try:
            return message.FromString(raw)
        except DecodeError:  # invalid UTF-8 in a string, a truncated field, not protobuf
            raise MalformedRequest(f"the request is not a valid {message.__name__}") from None


class FrontEnd:
    """What both transports are: the methods and the call checks above, a port, and a stop that
    runs once. Each transport adds its own state in `setup` and implements `start` and `_stop`."""

    def __init__(
        self,
        settings: Settings,
        models: Models,
        plane: DataPlane,
        keys: ApiKeys,
        metrics: Metrics,
        concurrency: Concurrency,
    ) -> None:
        self.settings = settings
        self.methods = methods(settings, models, plane)
        self.calls = Calls(settings, keys, metrics, concurrency)
        self.port = 0  # the bound port, once started
        self._stopped: asyncio.Future[None] | None = None
        self.setup()

    def setup(self) -> None:
        """The transport's own state, from `self.settings`."""

    @property
    def listening(self) -> bool:
        raise NotImplementedError

    async def start(self) -> None:
        """Listen on HOST:GRPC_PORT; raise OSError naming GRPC_PORT if it cannot be bound."""
        raise NotImplementedError

    async def stop(self) -> None:
        """Stop accepting calls; those in flight get SHUTDOWN_GRACE_SECONDS to finish.

        Called when HTTP stops accepting (so both share the grace) and again at the app's
        shutdown: the second call waits for the first.
        """
        if not self.listening:
            return
        if self._stopped is None:
            self._stopped = asyncio.ensure_future(self._stop())
        await asyncio.shield(self._stopped)

    async def _stop(self) -> None:
        raise NotImplementedError
