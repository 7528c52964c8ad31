"""Request bodies: the same rows for every server, in each server's own format."""

from collections.abc import Sequence

import orjson

# Setosa from the iris data set; any other model gets a row of ones (finite, so always valid).
IRIS_FEATURES = (
    "sepal length (cm)",
    "sepal width (cm)",
    "petal length (cm)",
    "petal width (cm)",
)
IRIS_ROW = (5.1, 3.5, 1.4, 0.2)


def example_row(features: Sequence[str]) -> list[float]:
    return list(IRIS_ROW) if tuple(features) == IRIS_FEATURES else [1.0] * len(features)


def predict_single(features: Sequence[str], row: Sequence[float]) -> bytes:
    """Our /predict, one row: {"features": {name: value}}."""
    return orjson.dumps({"features": dict(zip(features, row, strict=True))})


def predict_batch(features: Sequence[str], row: Sequence[float], rows: int) -> bytes:
    """Our /predict, a batch: {"instances": [{name: value}, ...]} with `rows` copies of `row`."""
    instance = dict(zip(features, row, strict=True))
    return orjson.dumps({"instances": [instance] * rows})


def mlflow_dataframe(features: Sequence[str], row: Sequence[float]) -> bytes:
    """MLflow's /invocations, one row, column-based: {"dataframe_split": {...}}."""
    return orjson.dumps({"dataframe_split": {"columns": list(features), "data": [list(row)]}})


def mlflow_tensor(row: Sequence[float]) -> bytes:
    """MLflow's /invocations, one row, tensor-based: {"inputs": [[...]]}."""
    return orjson.dumps({"inputs": [list(row)]})


def oip_json(input_name: str, rows: Sequence[Sequence[float]]) -> bytes:
    """Open Inference Protocol infer with a JSON tensor of `rows`."""
    flat = [v for row in rows for v in row]
    tensor = {"name": input_name, "shape": [len(rows), len(rows[0])], "datatype": "FP32",
              "data": flat}  # fmt: skip
    return orjson.dumps({"inputs": [tensor]})


def oip_binary(input_name: str, rows: Sequence[Sequence[float]]) -> tuple[bytes, int]:
    """The same request with the binary tensor data extension (binary outputs too), as
    tritonclient.http sends it; the body and its JSON header's length."""
    import numpy as np

    data = np.asarray(rows, dtype="<f4").tobytes()
    tensor = {"name": input_name, "shape": [len(rows), len(rows[0])], "datatype": "FP32",
              "parameters": {"binary_data_size": len(data)}}  # fmt: skip
    header = orjson.dumps({"inputs": [tensor], "parameters": {"binary_data_output": True}})
    return header + data, len(header)


def mlflow_split(features: Sequence[str], rows: Sequence[Sequence[float]]) -> bytes:
    """MLflow's /invocations with a DataFrame in split orient, as its own client sends one."""
    return orjson.dumps({"dataframe_split": {"columns": list(features), "data": list(rows)}})


def kserve_v1(rows: Sequence[Sequence[float]]) -> bytes:
    """KServe V1 :predict with instances as rows."""
    return orjson.dumps({"instances": list(rows)})


def grpc_infer(model_name: str, input_name: str, rows: Sequence[Sequence[float]]) -> bytes:
    """A gRPC ModelInfer message with raw tensor contents (tritonclient.grpc's way), framed for
    HTTP/2: a compression flag, its length, the message."""
    import struct

    import numpy as np

    from server.protos import grpc_predict_v2_pb2 as pb

    request = pb.ModelInferRequest(model_name=model_name)
    request.inputs.add(name=input_name, datatype="FP32", shape=[len(rows), len(rows[0])])
    request.raw_input_contents.append(np.asarray(rows, dtype="<f4").tobytes())
    message = request.SerializeToString()
    return b"\0" + struct.pack(">I", len(message)) + message
