"""onnxruntime behind the runtime interface: the one module of the server that imports it."""

from collections.abc import Callable
from typing import Any

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
        self._run = compiled_run(self.session)

    def run(self, output_names: list[str], input_name: str, rows: np.ndarray) -> list[np.ndarray]:
        result: list[np.ndarray] = self._run(output_names, {input_name: rows}, None)
        return result


def compiled_run(session: Any) -> Callable[..., list[np.ndarray]]:
    """The compiled session's `run`, under `InferenceSession.run`; the public one if absent.

    The public method's Python checks (graph capture, input names, fallback to other execution
    providers) cost a one-row request about 4 µs and guard nothing here: one CPU provider, and
    the input name comes from the model's contract, checked against the graph at load.
    """
    compiled = getattr(session, "_sess", None)
    run: Callable[..., list[np.ndarray]] = getattr(compiled, "run", None) or session.run
    return run


ONNX = RuntimeKind(
    framework="onnx", model_file=MODEL_FILE, platform="onnxruntime_onnx", load=OnnxRuntime
)
