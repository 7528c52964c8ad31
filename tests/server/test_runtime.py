"""The runtime interface and its onnxruntime implementation."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from server.contract import MODEL_FILE
from server.onnx_runtime import ONNX, OnnxRuntime, compiled_run
from server.runtime import RuntimeLoadError, runtime_kind


def test_metadata_without_a_framework_is_onnx() -> None:
    assert runtime_kind(None) is ONNX
    assert runtime_kind("onnx").model_file == MODEL_FILE
    with pytest.raises(RuntimeLoadError, match="supported: onnx"):
        runtime_kind("tensorflow")


def test_onnxruntime_declares_its_tensors_and_scores(model_dirs: dict[str, Path]) -> None:
    runtime = OnnxRuntime((model_dirs["iris"] / MODEL_FILE).read_bytes())
    [spec] = runtime.inputs
    assert (spec.name, spec.dtype, spec.shape[-1]) == ("input", np.float32, 4)
    assert {o.name: o.dtype for o in runtime.outputs} == {
        "label": np.int64,
        "probabilities": np.float32,
    }
    rows = np.asarray([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)
    label, probabilities = runtime.run(["label", "probabilities"], "input", rows)
    assert label.tolist() == [0]
    assert probabilities.shape == (1, 3)


def test_a_corrupt_model_file_is_a_load_error() -> None:
    with pytest.raises(RuntimeLoadError, match="onnxruntime cannot load the model"):
        OnnxRuntime(b"not a model")


def test_onnxruntime_is_imported_by_its_module_only() -> None:
    server = Path(__file__).resolve().parents[2] / "server"
    importers = sorted(
        path.name for path in server.glob("*.py") if "import onnxruntime" in path.read_text()
    )
    assert importers == ["onnx_runtime.py"]


def test_the_compiled_session_answers_as_the_public_run_does(model_dirs: dict[str, Path]) -> None:
    """The fast call skips onnxruntime's Python checks and nothing else."""
    runtime = OnnxRuntime((model_dirs["iris"] / MODEL_FILE).read_bytes())
    assert runtime._run != runtime.session.run  # the compiled session's own method
    rows = np.random.default_rng(0).uniform(0, 8, (50, 4)).astype(np.float32)
    expected = runtime.session.run(["label", "probabilities"], {"input": rows})
    got = runtime.run(["label", "probabilities"], "input", rows)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(Exception, match=r"(?i)type"):  # the compiled session checks dtypes too
        runtime.run(["label"], "input", rows.astype(np.float64))


def test_an_onnxruntime_without_a_compiled_session_uses_the_public_run() -> None:
    public = SimpleNamespace(run=lambda *args: ["answer"])
    assert compiled_run(public) is public.run
    assert compiled_run(SimpleNamespace(run=public.run, _sess=object())) is public.run
