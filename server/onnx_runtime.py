"""onnxruntime behind the runtime interface: the one module of the server that imports it."""

import numpy as np
import onnxruntime as ort

from server.contract import MODEL_FILE, TensorSpec
from server.runtime import RuntimeKind, RuntimeLoadError

_DTYPES: dict[str, type] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
}


def _spec(arg: ort.NodeArg) -> TensorSpec:
    return TensorSpec(arg.name, _DTYPES.get(arg.type, object), tuple(arg.shape))


class OnnxRuntime:
    """One onnxruntime session, single-threaded: a request is a few rows, threads only add hand-offs."""

    def __init__(self, model: bytes) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises untyped errors for a corrupt graph
            raise RuntimeLoadError(f"onnxruntime cannot load the model: {exc}") from exc
        self.inputs = [_spec(arg) for arg in self.session.get_inputs()]
        self.outputs = [_spec(arg) for arg in self.session.get_outputs()]

    def run(self, output_names: list[str], input_name: str, rows: np.ndarray) -> list[np.ndarray]:
        result: list[np.ndarray] = self.session.run(output_names, {input_name: rows})
        return result


ONNX = RuntimeKind(
    framework="onnx", model_file=MODEL_FILE, platform="onnxruntime_onnx", load=OnnxRuntime
)
