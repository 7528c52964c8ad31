"""One machine's answers for a bundle: model outputs on every held-out row, and the server's
answers to /ready, /predict (one row and the batch) and OIP infer, with its inference times.

The same code observes the reference machine and the machine under test; only the runner
differs (arm64.runners), so whatever differs in the answers is the architecture's doing.
"""

import json
import platform
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from arm64.bundle import metadata, read_manifest
from arm64.runners import REPO_ROOT, Emulated, Native
from loadtest.processes import Service, free_port

Runner = Native | Emulated
GUEST = REPO_ROOT / "arm64" / "guest.py"
GUEST_TIMEOUT_SECONDS = 900
READY_TIMEOUT_SECONDS = 180  # an emulated server imports numpy and onnxruntime in 10 to 30 s
TIMED_REQUESTS = 200
WARMUP_REQUESTS = 20


def model_outputs(runner: Runner, bundle: Path) -> dict[str, Any]:
    """guest.py's JSON: every model on its held-out rows, as a batch and row by row."""
    command, env = runner.python([runner.path(GUEST), runner.path(bundle)], {})
    done = subprocess.run(
        command,
        env=env,
        capture_output=True,
        text=True,
        timeout=GUEST_TIMEOUT_SECONDS,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"the model run on {runner.label} exited with {done.returncode}:\n{done.stderr[-3000:]}"
        )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def requests_for(model_metadata: dict[str, Any], rows: np.ndarray) -> dict[str, Any]:
    """The requests every server gets: name -> [method, path, JSON body or None]."""
    features = model_metadata["features"]
    values = rows.astype(np.float64).tolist()  # the float32 values, exactly
    instances = [dict(zip(features, row, strict=True)) for row in values]
    tensor = {
        "name": model_metadata["input_name"],
        "shape": list(rows.shape),
        "datatype": "FP32",
        "data": [value for row in values for value in row],
    }
    return {
        "ready": ["GET", "/ready", None],
        "predict, one row": ["POST", "/predict", {"features": instances[0]}],
        "predict, every held-out row": ["POST", "/predict", {"instances": instances}],
        "OIP infer, every held-out row": [
            "POST",
            f"/v2/models/{model_metadata['name']}/infer",
            {"inputs": [tensor]},
        ],
    }


def ask(url: str, method: str, body: Any, timeout: float = 30) -> dict[str, Any]:
    """One request; {"status": code, "body": decoded JSON (or text)}."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 - a loopback URL of our own
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        decoded = json.loads(raw)
    except ValueError:
        decoded = raw.decode(errors="replace")
    return {"status": status, "body": decoded}


@contextmanager
def server(runner: Runner, model_dir: Path, log_dir: Path) -> Iterator[Service]:
    """`python -m server` serving `model_dir` on a free loopback port; stopped on exit."""
    port = free_port()
    env = {
        "MODEL_URI": runner.path(model_dir),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "MODEL_POLL_SECONDS": "0",
        "SHUTDOWN_DELAY_SECONDS": "0",
        "LOG_LEVEL": "warning",
    }
    command, full_env = runner.python(["-m", "server"], env)
    log_dir.mkdir(parents=True, exist_ok=True)
    service = Service(
        f"server ({runner.label})",
        command,
        port=port,
        ready_path="/ready",
        log_path=log_dir / f"server-{model_dir.name}-{platform.machine()}-{port}.log",
        env=full_env,
        cwd=REPO_ROOT,
    )
    try:
        service.wait_ready(timeout=READY_TIMEOUT_SECONDS, poll=0.1)
        yield service
    finally:
        service.stop()


def inference_times(url: str, body: Any, count: int) -> list[float]:
    """inference_time_ms of `count` one-row /predict answers, one request at a time."""
    times = []
    for _ in range(count):
        answer = ask(url + "/predict", "POST", body)
        if answer["status"] != 200:
            raise RuntimeError(f"/predict answered {answer['status']}: {answer['body']}")
        times.append(float(answer["body"]["inference_time_ms"]))
    return times


def observe(runner: Runner, bundle: Path, log_dir: Path) -> dict[str, Any]:
    """Everything the comparison needs from one machine, as JSON-ready data."""
    started = time.monotonic()
    manifest = read_manifest(bundle)
    outputs = model_outputs(runner, bundle)
    answers: dict[str, Any] = {}
    timings: dict[str, Any] = {}
    server_start: dict[str, float] = {}
    for entry in manifest["models"]:
        model_metadata = metadata(bundle, entry)
        rows = np.load(bundle / entry["rows"])
        requests = requests_for(model_metadata, rows)
        with server(runner, bundle / entry["dir"], log_dir) as service:
            server_start[entry["name"]] = round(service.ready_seconds or 0.0, 2)
            answers[entry["name"]] = {
                name: ask(service.url + path, method, body)
                for name, (method, path, body) in requests.items()
            }
            one_row = requests["predict, one row"][2]
            inference_times(service.url, one_row, WARMUP_REQUESTS)
            timings[entry["name"]] = inference_times(service.url, one_row, TIMED_REQUESTS)
    return {
        "label": runner.label,
        "emulated": runner.emulated,
        "machine": outputs["machine"],
        "versions": outputs["versions"],
        "outputs": outputs["models"],
        "answers": answers,
        "inference_time_ms": timings,
        "server_start_seconds": server_start,
        "elapsed_seconds": round(time.monotonic() - started, 1),
    }
