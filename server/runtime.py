"""The model runtime interface: what the server needs from a framework, and nothing more.

A runtime loads a model file, declares its input and output tensors, and scores a batch. The
server depends on this interface only; `server.onnx_runtime` is today's one implementation, and a
second framework is one more `RuntimeKind` in `RUNTIMES`.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from server.contract import TensorSpec


class Runtime(Protocol):
    """A loaded model file."""

    @property
    def inputs(self) -> list[TensorSpec]: ...

    @property
    def outputs(self) -> list[TensorSpec]: ...

    def run(self, output_names: list[str], input_name: str, rows: np.ndarray) -> list[np.ndarray]:
        """Score a batch; the outputs in the order asked for."""
        ...


@dataclass(frozen=True)
class RuntimeKind:
    """A framework the server can serve: how its model file is named, reported and loaded."""

    framework: str  # metadata.json's `framework`
    model_file: str  # the model file's name in a model directory
    platform: str  # the Open Inference Protocol's platform name
    load: Callable[[bytes], Runtime]  # raises RuntimeLoadError


class RuntimeLoadError(Exception):
    """The framework cannot load the model file; the message says why."""


def runtime_kind(framework: str | None) -> RuntimeKind:
    """The runtime for a model's framework (metadata without one is an ONNX model)."""
    from server.onnx_runtime import ONNX  # the only place onnxruntime is imported

    kinds = {kind.framework: kind for kind in (ONNX,)}
    kind = kinds.get(framework or ONNX.framework)
    if kind is None:
        raise RuntimeLoadError(
            f"framework {framework!r} is not served here; supported: {', '.join(kinds)}"
        )
    return kind
