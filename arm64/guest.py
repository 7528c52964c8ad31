"""Run every model of a reference bundle on its held-out rows; print the outputs as JSON.

This file runs on the architecture under test with nothing but the server's runtime set (numpy
and onnxruntime), by path: `python arm64/guest.py BUNDLE_DIR`. It imports nothing else from the
repository. Sessions are configured as the server configures its own (one thread, sequential).
Each model runs once on the whole batch and once per row; Python's float repr round-trips, so
the JSON carries every value exactly.
"""

import json
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort


def session(model_dir: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return ort.InferenceSession(
        str(model_dir / "model.onnx"), options, providers=["CPUExecutionProvider"]
    )


def run_model(bundle: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """{"batch": {output: values}, "rows": {output: values}} for one model's held-out rows."""
    model = session(bundle / entry["dir"])
    rows = np.load(bundle / entry["rows"]).astype(np.float32)
    names = [output.name for output in model.get_outputs()]
    feed = model.get_inputs()[0].name
    batch = dict(zip(names, model.run(None, {feed: rows}), strict=True))
    one_at_a_time = [model.run(None, {feed: rows[i : i + 1]}) for i in range(len(rows))]
    per_row = {
        name: np.concatenate([outputs[k] for outputs in one_at_a_time])
        for k, name in enumerate(names)
    }
    return {
        "batch": {name: values.tolist() for name, values in batch.items()},
        "rows": {name: values.tolist() for name, values in per_row.items()},
    }


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python arm64/guest.py BUNDLE_DIR", file=sys.stderr)
        return 2
    bundle = Path(argv[0])
    manifest = json.loads((bundle / "manifest.json").read_text())
    result = {
        "machine": platform.machine(),
        "versions": {"onnxruntime": ort.__version__, "numpy": np.__version__},
        "models": {entry["name"]: run_model(bundle, entry) for entry in manifest["models"]},
    }
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
