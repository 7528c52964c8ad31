"""The Open Inference Protocol over gRPC, and gRPC health checking, on GRPC_PORT.

`inference.GRPCInferenceService` (ServerLive, ServerReady, ModelReady, ServerMetadata,
ModelMetadata, ModelInfer) as KServe and Triton define it, and `grpc.health.v1.Health` (Check,
List) for Kubernetes' gRPC probes. It runs on the server's own event loop (grpc.aio), so it
shares everything with HTTP: the data plane (models, the champion/challenger split, coalescing,
drift, shadow), the API keys (`authorization: Bearer <key>` metadata on ModelInfer), the
concurrency limit and the request metrics (method `GRPC`, the RPC's path as the route, the HTTP
status its outcome corresponds to). Tensors arrive as `raw_input_contents` (what Triton's client
sends) or typed `contents`; outputs are answered the same way the inputs came.

Every method is registered as request-streaming, though each takes one message: grpc then calls
our handler as soon as the call's metadata is in, before the message is read, so the shed and key
checks refuse a call without receiving its message, the concurrency slot is held from before the
read until the call ends (a call cancelled mid-message gives it back), the message gets the
BODY_TIMEOUT_SECONDS deadline HTTP bodies get, and a message that does not decode is our
INVALID_ARGUMENT rather than grpc's UNKNOWN. The connection limits are server/grpc_limits.py.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
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
from server.grpc_limits import listen_address, max_rpcs, server_options
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
_METHOD_LABEL = "GRPC"
# The gRPC status for each HTTP status the server's errors carry.
GRPC_CODES: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    404: grpc.StatusCode.NOT_FOUND,
    408: grpc.StatusCode.DEADLINE_EXCEEDED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    499: grpc.StatusCode.CANCELLED,
    503: grpc.StatusCode.UNAVAILABLE,
}
# Typed tensor contents, by datatype: the field that holds the values.
_CONTENTS = {"FP32": "fp32_contents", "FP64": "fp64_contents", "INT64": "int64_contents",
             "INT32": "int_contents"}  # fmt: skip
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

Request = TypeVar("Request", bound=Message)
Handler = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Message]]
_CLIENT_CLOSED = 499  # as HTTP counts a client that hung up


def _metadata(context: grpc.aio.ServicerContext) -> tuple[str, str | None]:
    """The `authorization` and a usable `x-request-id` of a call (as HTTP takes the header)."""
    authorization, request_id = "", None
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            authorization = str(value)
        elif key == "x-request-id":
            given = str(value)
            if usable(given.encode()):
                request_id = given
    return authorization, request_id


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
    field = _CONTENTS.get(dtype)
    if field is None:
        raise TypeError(f"no typed contents for {dtype}")
    getattr(contents, field).extend(tensor.ravel().tolist())


class GrpcFrontEnd:
    """The gRPC server: its handlers over the data plane, started and stopped with the app."""

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
        self.models = models
        self.plane = plane
        self.keys = keys
        self.metrics = metrics
        self.concurrency = concurrency
        self.server: grpc.aio.Server | None = None
        self.port = 0  # the bound port, once started
        self._stopped: asyncio.Future[None] | None = None

    async def start(self) -> None:
        """Listen on HOST:GRPC_PORT; raise OSError naming GRPC_PORT if it cannot be bound."""
        settings = self.settings
        server = grpc.aio.server(
            options=server_options(settings), maximum_concurrent_rpcs=max_rpcs(settings)
        )
        server.add_generic_rpc_handlers((self._inference_handler(), self._health_handler()))
        address = listen_address(settings.host, settings.grpc_port)
        try:
            self.port = server.add_insecure_port(address)
        except RuntimeError:  # grpc's own message says only "Failed to bind"
            raise OSError(
                f"cannot listen for gRPC on {address} (in use, or not an address of this "
                "machine): choose another GRPC_PORT or HOST"
            ) from None
        await server.start()
        self.server = server
        log.info("gRPC listening", extra={"port": self.port})

    async def stop(self) -> None:
        """Stop accepting calls; those in flight get SHUTDOWN_GRACE_SECONDS to finish.

        Called when HTTP stops accepting (so both share the grace) and again at the app's
        shutdown: the second call waits for the first.
        """
        if self.server is None:
            return
        if self._stopped is None:
            self._stopped = asyncio.ensure_future(
                self.server.stop(self.settings.shutdown_grace_seconds)
            )
        await asyncio.shield(self._stopped)

    def _wrap(
        self, name: str, handler: Handler, message: type[Message], needs_key: bool,
        sheddable: bool,
    ) -> grpc.RpcMethodHandler:  # fmt: skip
        """The method: shedding and the key check, then the message read within the body
        deadline and decoded, then `handler`; errors mapped to statuses, request metrics."""
        route = f"/{name}"
        observe = self.metrics.observe_request
        concurrency = self.concurrency
        keys = self.keys
        read = _reader(message, self.settings.body_timeout_seconds, self.settings.max_body_bytes)

        async def call(requests: Any, context: grpc.aio.ServicerContext) -> Message:
            started = time.perf_counter()
            if sheddable and concurrency.full():
                self.metrics.shed.inc()
                observe(_METHOD_LABEL, "shed", 503, time.perf_counter() - started)
                await context.abort(grpc.StatusCode.UNAVAILABLE, SHED_MESSAGE)
            # A call that may be shed holds its slot from before its message is read; a probe
            # takes one only once its message is in, so unread probes never shed inference.
            counted = sheddable
            if counted:
                concurrency.in_flight += 1
            status = 500
            try:
                if needs_key and keys.enabled:
                    keys.check_authorization(_metadata(context)[0])
                request = await read(context)
                if not counted:
                    concurrency.in_flight += 1
                    counted = True
                answer = await handler(request, context)
                status = 200
                return answer
            except ServerError as exc:
                status = exc.status_code
                await context.abort(GRPC_CODES.get(status, grpc.StatusCode.INTERNAL), exc.detail)
                raise  # abort raises; this only tells the type checker
            except asyncio.CancelledError:  # the client went away (or the grace ran out)
                status = _CLIENT_CLOSED
                raise
            except Exception as exc:  # a bug: logged, and answered without its details
                log.error("unhandled error", exc_info=exc, extra={"rpc": route})
                await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)
                raise
            finally:
                if counted:
                    concurrency.in_flight -= 1
                observe(_METHOD_LABEL, route, status, time.perf_counter() - started)

        return grpc.stream_unary_rpc_method_handler(call, response_serializer=_serialize)

    def _inference_handler(self) -> grpc.GenericRpcHandler:
        settings, models, plane = self.settings, self.models, self.plane
        max_batch = settings.max_batch

        async def server_live(request: pb.ServerLiveRequest, context: Any) -> Message:
            return pb.ServerLiveResponse(live=True)

        async def server_ready(request: pb.ServerReadyRequest, context: Any) -> Message:
            return pb.ServerReadyResponse(ready=models.ready)

        async def server_metadata(request: pb.ServerMetadataRequest, context: Any) -> Message:
            return pb.ServerMetadataResponse(
                name=SERVER_NAME, version=__version__, extensions=EXTENSIONS
            )

        async def model_ready(request: pb.ModelReadyRequest, context: Any) -> Message:
            plane.find(request.name, request.version or None)
            return pb.ModelReadyResponse(ready=True)

        async def metadata(request: pb.ModelMetadataRequest, context: Any) -> Message:
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

        async def model_infer(request: pb.ModelInferRequest, context: Any) -> Message:
            given = _metadata(context)[1]
            # The id the prediction is recorded under (for feedback), answered in the trailers.
            request_id = given if given is not None else new_request_id().decode()
            context.set_trailing_metadata((("x-request-id", request_id),))
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

        # As over HTTP: inference always needs a key, metadata unless OPEN_ROUTES names it.
        metadata_key = needs_key(METADATA, settings.open_routes)
        methods: dict[str, tuple[Handler, type[Message], bool, bool]] = {
            "ServerLive": (server_live, pb.ServerLiveRequest, False, False),
            "ServerReady": (server_ready, pb.ServerReadyRequest, False, False),
            "ModelReady": (model_ready, pb.ModelReadyRequest, metadata_key, True),
            "ServerMetadata": (server_metadata, pb.ServerMetadataRequest, metadata_key, True),
            "ModelMetadata": (metadata, pb.ModelMetadataRequest, metadata_key, True),
            "ModelInfer": (model_infer, pb.ModelInferRequest, True, True),
        }
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                name: self._wrap(f"{SERVICE}/{name}", handler, message, needs_key, sheddable)
                for name, (handler, message, needs_key, sheddable) in methods.items()
            },
        )

    def _health_handler(self) -> grpc.GenericRpcHandler:
        models = self.models

        def status(service: str) -> Any:
            if service not in ("", SERVICE):
                raise _UnknownService(service)
            return _SERVING if models.ready else _NOT_SERVING

        async def check(request: health_pb2.HealthCheckRequest, context: Any) -> Message:
            return health_pb2.HealthCheckResponse(status=status(request.service))

        async def listing(request: health_pb2.HealthListRequest, context: Any) -> Message:
            response = health_pb2.HealthListResponse()
            for service in ("", SERVICE):
                response.statuses[service].status = status(service)
            return response

        return grpc.method_handlers_generic_handler(
            HEALTH_SERVICE,
            {
                "Check": self._wrap(
                    f"{HEALTH_SERVICE}/Check", check, health_pb2.HealthCheckRequest, False, False
                ),
                "List": self._wrap(
                    f"{HEALTH_SERVICE}/List", listing, health_pb2.HealthListRequest, False, False
                ),
            },
        )


class _UnknownService(ServerError):
    """Health checking asked about a service this server does not have (NOT_FOUND)."""

    status_code = 404

    def __init__(self, service: str) -> None:
        super().__init__(f"unknown service {service[:200]!r}; this server has {SERVICE!r}")


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def _reader(
    message: type[Message], seconds: float, limit: int
) -> Callable[[grpc.aio.ServicerContext], Awaitable[Message]]:
    """Reads a call's one request message within `seconds` (0: no deadline) and decodes it."""
    decode = message.FromString
    kind = message.__name__
    # grpc reads the same end of a call whether its message was too large (grpc has answered
    # RESOURCE_EXHAUSTED already) or the client sent none; the first is the one that happens.
    missing = (
        f"no {kind} arrived whole: it was larger than the limit of {limit} bytes, "
        "or the call ended without one"
    )

    async def read(context: grpc.aio.ServicerContext) -> Message:
        try:
            async with asyncio.timeout(seconds or None):  # a timer, not a task as wait_for takes
                raw = await context.read()
        except TimeoutError:
            raise RequestTimeout(
                f"the request message did not arrive within {seconds:g} seconds"
            ) from None
        if raw is grpc.aio.EOF:
            raise PayloadTooLarge(missing)
        try:
            return decode(raw)
        except DecodeError:  # invalid UTF-8 in a string, a truncated field, not protobuf
            raise MalformedRequest(f"the request is not a valid {kind}") from None

    return read
