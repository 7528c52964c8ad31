"""The container image for real: built by `make image`, run hardened, probed by testinfra."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import time
import urllib.request
from typing import Any

import pytest
from testinfra.host import Host

from tests.image.conftest import (
    APP_UID,
    LOCAL_BASE_IMAGE,
    REPO_ROOT,
    Container,
    docker,
    http_get,
    http_post_json,
    remove_container,
    run_container,
    wait_until_ready,
)

pytestmark = [pytest.mark.image, pytest.mark.timeout(1800)]

MAX_IMAGE_BYTES = 300_000_000
MAX_RATIO_TO_ORIGINAL_STYLE = 1 / 3
STOP_GRACE_SECONDS = 10
COMPILERS = ("gcc", "cc", "c++", "g++", "clang", "ld", "as", "make")


def predict_body(metadata: dict[str, Any]) -> dict[str, Any]:
    """A /predict batch built from the model's own input example (rows in feature order)."""
    features = metadata["features"]
    return {
        "instances": [dict(zip(features, row, strict=True)) for row in metadata["input_example"]]
    }


def proc_status(host: Host, pid: int = 1) -> dict[str, str]:
    lines = host.file(f"/proc/{pid}/status").content_string.splitlines()
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


def listening_ports(host: Host) -> set[int]:
    """TCP ports in LISTEN state, read from /proc (the image ships neither ss nor netstat)."""
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in host.file(table).content_string.splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def test_server_runs_as_the_fixed_non_root_uid(host: Host) -> None:
    status = proc_status(host)
    assert status["Uid"].split() == [str(APP_UID)] * 4
    assert status["Gid"].split() == [str(APP_UID)] * 4
    assert host.user().uid == APP_UID
    assert host.file("/proc/1/cmdline").content_string.split("\0")[:3] == [
        "python",
        "-m",
        "server",
    ]


def test_all_capabilities_dropped_and_no_new_privileges(host: Host, container: Container) -> None:
    status = proc_status(host)
    for capability_set in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[capability_set], 16) == 0, capability_set
    assert status["NoNewPrivs"] == "1"
    assert docker("inspect", "-f", "{{ json .HostConfig.CapDrop }}", container.id) == '["ALL"]'


def test_root_filesystem_is_read_only_and_only_tmp_is_writable(
    host: Host, container: Container
) -> None:
    assert docker("inspect", "-f", "{{ .HostConfig.ReadonlyRootfs }}", container.id) == "true"
    for path in ("/app/probe", "/opt/model/probe", "/opt/venv/probe", "/probe"):
        result = host.run(f"touch {path}")
        assert result.rc != 0, path
        assert "Read-only file system" in result.stderr, result.stderr
    assert host.run("touch /tmp/probe && rm /tmp/probe").rc == 0


def test_no_compiler_in_the_image(host: Host) -> None:
    present = [tool for tool in COMPILERS if host.exists(tool)]
    assert present == []


@pytest.mark.parametrize("module", ["sklearn", "mlflow", "scipy", "pandas", "grpc"])
def test_training_libraries_are_absent(host: Host, module: str) -> None:
    result = host.run(f"python -c 'import {module}'")
    assert result.rc != 0
    assert "ModuleNotFoundError" in result.stderr


def test_runtime_libraries_import(host: Host) -> None:
    host.check_output(
        "python -c 'import numpy, onnxruntime, starlette, uvicorn, orjson, hpack, google.protobuf'"
    )


def test_no_pip_cache_and_no_tests(host: Host) -> None:
    caches = host.check_output(
        "find / -xdev \\( -path /proc -o -path /sys \\) -prune -o "
        "-type d -path '*/.cache/pip' -print 2>/dev/null || true"
    )
    assert caches == ""
    assert not host.file("/app/tests").exists
    tests = host.check_output(
        "find /app /opt/venv -type d \\( -name tests -o -name testing_tests \\) -print"
    )
    assert tests == ""


def test_model_and_server_package_in_place(host: Host, model_metadata: dict[str, Any]) -> None:
    for name in ("model.onnx", "metadata.json", "drift_reference.json"):
        model_file = host.file(f"/opt/model/{name}")
        assert model_file.is_file, name
        assert model_file.uid == 0  # owned by root: the server can read, never rewrite, it
    assert model_metadata["schema_version"] == 1
    assert host.file("/app/server/__init__.py").is_file
    assert host.file("/app/server/__main__.py").is_file
    assert host.file("/app/server").uid == 0
    env = host.check_output("env")
    assert "MODEL_FALLBACK_PATH=/opt/model" in env.splitlines()


def test_port_8000_is_listening(host: Host) -> None:
    assert 8000 in listening_ports(host)


def test_endpoints_answer_inside_the_container(host: Host, model_metadata: dict[str, Any]) -> None:
    script = (
        "import json, sys, urllib.request as u\n"
        "base = 'http://127.0.0.1:8000'\n"
        "out = {}\n"
        "for route in ('/health', '/ready'):\n"
        "    with u.urlopen(base + route, timeout=5) as r:\n"
        "        out[route] = [r.status, json.loads(r.read())]\n"
        "req = u.Request(base + '/predict', data=sys.argv[1].encode(),\n"
        "                headers={'Content-Type': 'application/json'})\n"
        "with u.urlopen(req, timeout=5) as r:\n"
        "    out['/predict'] = [r.status, json.loads(r.read())]\n"
        "print(json.dumps(out))\n"
    )
    body = json.dumps(predict_body(model_metadata))
    answers = json.loads(host.check_output(f"python -c {shlex.quote(script)} {shlex.quote(body)}"))
    assert answers["/health"] == [200, {"status": "healthy"}]
    assert answers["/ready"][0] == 200
    assert answers["/ready"][1]["model_loaded"] is True
    assert answers["/predict"][0] == 200


def test_endpoints_answer_through_the_published_port(
    container: Container, model_metadata: dict[str, Any]
) -> None:
    assert http_get(f"{container.url}/health") == (200, {"status": "healthy"})
    status, ready = http_get(f"{container.url}/ready")
    assert (status, ready["status"], ready["model_loaded"]) == (200, "ready", True)
    status, prediction = http_post_json(f"{container.url}/predict", predict_body(model_metadata))
    assert status == 200, prediction
    assert prediction is not None


def test_offline_docs_load_after_the_image_was_trimmed(container: Container) -> None:
    with urllib.request.urlopen(f"{container.url}/docs", timeout=5) as response:
        page = response.read().decode()
    assets = [part.split('"')[0] for part in page.split('src="')[1:] + page.split('href="')[1:]]
    assert assets
    for asset in assets:
        with urllib.request.urlopen(f"{container.url}{asset}", timeout=5) as response:
            assert response.status == 200, asset


def test_serves_the_baked_fallback_model_when_the_registry_is_unreachable(
    container: Container,
) -> None:
    with urllib.request.urlopen(f"{container.url}/metrics", timeout=5) as response:
        metrics = response.read().decode()
    model_info = [line for line in metrics.splitlines() if line.startswith("model_info{")]
    assert model_info, "no model_info metric"
    assert any('source="fallback"' in line for line in model_info), model_info


def test_healthcheck_passes_with_the_image_tools_alone(host: Host, container: Container) -> None:
    assert host.run("python /app/healthcheck.py").rc == 0
    deadline = time.monotonic() + 60
    health = ""
    while time.monotonic() < deadline:
        health = docker("inspect", "-f", "{{ .State.Health.Status }}", container.id)
        if health == "healthy":
            break
        time.sleep(1)
    assert health == "healthy"


def test_oci_labels(image: str) -> None:
    labels = json.loads(docker("image", "inspect", "-f", "{{ json .Config.Labels }}", image))
    revision = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    assert labels["org.opencontainers.image.revision"] == (revision or "unknown")
    assert labels["org.opencontainers.image.version"]
    assert labels["org.opencontainers.image.source"]
    config = json.loads(docker("image", "inspect", "-f", "{{ json .Config }}", image))
    assert config["User"] == f"{APP_UID}:{APP_UID}"
    assert config["Entrypoint"] == ["python", "-m", "server"]
    assert "8000/tcp" in config["ExposedPorts"]
    assert config["Healthcheck"]["Test"][0] == "CMD"


def test_docker_stop_ends_it_within_the_grace_period_with_exit_code_0(image: str) -> None:
    container = run_container(image)
    try:
        wait_until_ready(container)
        started = time.monotonic()
        docker("stop", "--time", str(STOP_GRACE_SECONDS), container.id, timeout=60)
        elapsed = time.monotonic() - started
        state = json.loads(docker("inspect", "-f", "{{ json .State }}", container.id))
        assert elapsed < STOP_GRACE_SECONDS, f"took {elapsed:.1f}s: SIGTERM was not handled"
        assert state["ExitCode"] == 0, state
        assert state["OOMKilled"] is False
    finally:
        remove_container(container)


def grpc_check(port: int) -> None:
    """From the host (grpcio is a development dependency, not in the image): gRPC health,
    ModelMetadata, then 200 ModelInfer calls through the published port."""
    import grpc
    import numpy as np

    from server.protos import grpc_predict_v2_pb2 as pb
    from server.protos import health_pb2

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:

        def call(path: str, request: Any, answer: Any) -> Any:
            method = channel.unary_unary(
                path,
                request_serializer=type(request).SerializeToString,
                response_deserializer=answer.FromString,
            )
            return method(request, timeout=10)

        health = call(
            "/grpc.health.v1.Health/Check",
            health_pb2.HealthCheckRequest(),
            health_pb2.HealthCheckResponse,
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING, health
        metadata = call(
            "/inference.GRPCInferenceService/ModelMetadata",
            pb.ModelMetadataRequest(name="iris-classifier"),
            pb.ModelMetadataResponse,
        )
        request = pb.ModelInferRequest(model_name="iris-classifier")
        request.inputs.add(name=metadata.inputs[0].name, datatype="FP32", shape=[1, 4])
        request.raw_input_contents.append(np.array([[5.1, 3.5, 1.4, 0.2]], np.float32).tobytes())
        for _ in range(200):
            answer = call(
                "/inference.GRPCInferenceService/ModelInfer", request, pb.ModelInferResponse
            )
        assert np.frombuffer(answer.raw_output_contents[0], np.int64).tolist() == [0], answer


def test_grpc_serves_when_on_and_the_server_stays_under_100_mib(image: str) -> None:
    """GRPC_PORT=8001 in the hardened container: health, inference, and the server's memory."""
    container = run_container(image, "--env", "GRPC_PORT=8001", "--publish", "127.0.0.1::8001")
    try:
        wait_until_ready(container)
        mapping = docker("port", container.id, "8001/tcp").splitlines()[0]
        grpc_check(int(mapping.rsplit(":", 1)[1]))
        status = docker("exec", container.id, "cat", "/proc/1/status")
        rss_kib = int(
            next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]
        )
        print(f"server RSS with gRPC on: {rss_kib / 1024:.1f} MiB")
        assert rss_kib < 100 * 1024
    finally:
        remove_container(container)


def test_image_size_within_target(image: str) -> None:
    size = int(docker("image", "inspect", "-f", "{{ .Size }}", image))
    assert size <= MAX_IMAGE_BYTES, f"{size / 1e6:.1f} MB"


@pytest.mark.skipif(
    os.environ.get("IMAGE_TESTS_SKIP_ORIGINAL_STYLE") == "1",
    reason="IMAGE_TESTS_SKIP_ORIGINAL_STYLE=1: the original-style comparison build was skipped",
)
def test_a_third_of_the_original_style_image(image: str) -> None:
    """Builds the one-stage image with full MLflow and scikit-learn on the same base; compares."""
    base = os.environ.get("BASE_IMAGE", LOCAL_BASE_IMAGE)
    result = subprocess.run(
        ["scripts/image-sizes.sh", image, base],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
        env={**os.environ, "UV": shutil.which("uv") or str(REPO_ROOT / ".tools/uv/bin/uv")},
    )
    assert result.returncode == 0, result.stderr
    print(result.stdout)
    sizes = json.loads((REPO_ROOT / "build" / "image-sizes.json").read_text())
    assert sizes["ratio"] <= MAX_RATIO_TO_ORIGINAL_STYLE, sizes
