"""The training image for real: `make image-training`, run as the chart's judge CronJob renders it.

`helm template` renders the CronJob with the judge on; its pod is translated into `docker run`
arguments by the rehearsal's podspec (read-only root, UID 10001, no capabilities, the /tmp
emptyDir, the memory and CPU limits, the environment with its Secrets resolved) and run with
`--network host` against a real `mlflow server` and a real PostgreSQL prediction store on
loopback. The two model versions are registered by `python -m training` in the same container.
The one thing changed from the rendering is where the API pods' /metrics is: here a stand-in on a
free loopback port answers with a healthy replica's figures.
"""

from __future__ import annotations

import http.server
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from demo.postgres import postgres_server
from rehearsal import docker as rehearsal_docker
from rehearsal.manifests import render
from rehearsal.podspec import ContainerPlan, Inputs, PodPlan, docker_run_args, plan_pod
from server.store import PredictionStore
from tests.image.conftest import APP_UID, LOG_DIR, docker
from tests.mlflow_server import MlflowServer, start_mlflow_server, stop_session
from tests.processes import free_port
from tests.training.test_loop_commands import HEALTHY_METRICS, record

pytestmark = [pytest.mark.image, pytest.mark.timeout(1800)]

NAMESPACE = "platform"
RENDERED_METRICS = "platform-api-pods.platform.svc:8000"
STORE_SECRET = "prediction-store"
JUDGE_SECRET = "judge-mlflow"
MODEL = "iris-classifier"


@dataclass(frozen=True)
class Run:
    code: int | None
    output: str
    seconds: float


@dataclass(frozen=True)
class Loop:
    """The rendered judge pod, ready to run, and the services it talks to."""

    plan: PodPlan
    container: ContainerPlan
    mlflow: MlflowServer
    store: PredictionStore
    scratch: Path
    deadline_seconds: int  # the Job's activeDeadlineSeconds

    def run(self, container: ContainerPlan, name: str) -> Run:
        """Run one container of the judge's pod to completion, as the Job's pod would."""
        args = docker_run_args(
            self.plan, container, "host", f"judgeimage-{name}-{free_port()}",
            lambda _volume: str(self.scratch), "mlops-platform.test=training-image",
        )  # fmt: skip
        # A pod on the host's network has the node's name: Docker refuses a hostname there.
        at = args.index("--hostname")
        del args[at : at + 2]
        started = time.monotonic()
        container_id = docker("run", *args)
        try:
            code = rehearsal_docker.wait(container_id, timeout=self.deadline_seconds)
            output = rehearsal_docker.logs(container_id, tail=200)  # stdout and stderr
        finally:
            docker("rm", "--force", container_id, check=False)
        (LOG_DIR / f"training-image-{name}.log").write_text(output)
        return Run(code, output, time.monotonic() - started)

    def command(self, *argv: str) -> ContainerPlan:
        """The judge's container with another command line (same image, user, env, mounts)."""
        return replace(self.container, entrypoint=argv[0], arguments=argv[1:])


class _Metrics(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = HEALTHY_METRICS.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def metrics_url() -> Iterator[str]:
    """A stand-in for the API pods' /metrics on a free loopback port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Metrics)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def judge_pod(image: str, tracking_uri: str) -> tuple[dict[str, Any], int]:
    """The judge CronJob's pod spec as `helm template` renders it, and its deadline."""
    repository, tag = image.rsplit(":", 1)
    sets = [
        "mlflow.image.repository=ghcr.io/owner/mlops-model-platform/mlflow",
        "api.feedback.enabled=true",
        f"api.feedback.store.existingSecret={STORE_SECRET}",
        "api.judge.enabled=true",
        f"api.judge.mlflow.existingSecret={JUDGE_SECRET}",
        f"api.mlflow.trackingUri={tracking_uri}",
    ]
    if repository.endswith("/training"):
        # Named as published: the chart's default judge image follows the API's repository and tag.
        sets += [
            f"api.image.repository={repository.removesuffix('/training')}",
            f"api.image.tag={tag}",
        ]
    else:
        sets += ["api.image.repository=mlops-model-server", f"api.judge.image.repository={repository}",
                 f"api.judge.image.tag={tag}"]  # fmt: skip
    release = render("platform", NAMESPACE, [], sets)
    (cronjob,) = release.of_kind("CronJob")
    job = cronjob["spec"]["jobTemplate"]["spec"]
    return dict(job["template"]), int(job["activeDeadlineSeconds"])


@pytest.fixture(scope="module")
def loop(
    training_image: str, metrics_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Loop]:
    mlflow, process = start_mlflow_server(tmp_path_factory.mktemp("judge-mlflow"), timeout=240)
    try:
        with postgres_server() as store_uri:
            template, deadline = judge_pod(training_image, mlflow.url)
            pod_spec = template["spec"]
            inputs = Inputs(
                namespace=NAMESPACE,
                config_maps={},
                secrets={
                    STORE_SECRET: {"uri": store_uri},
                    JUDGE_SECRET: {"username": "judge", "password": "not-checked-here"},
                },
                host_cpus=2.0,
            )
            plan = plan_pod(
                "platform-api-judge-1", pod_spec, template["metadata"]["labels"], inputs, (),
                rehearsal_docker.image_user,
            )  # fmt: skip
            (container,) = plan.containers
            assert container.image == training_image
            arguments = list(container.arguments)
            rendered = f"--metrics-url=http://{RENDERED_METRICS}/metrics"
            assert rendered in arguments, arguments
            arguments[arguments.index(rendered)] = f"--metrics-url=http://{metrics_url}/metrics"
            container = replace(container, arguments=tuple(arguments))
            with tempfile.TemporaryDirectory(prefix="judgeimage-tmp-") as scratch:
                Path(scratch).chmod(0o1777)  # an emptyDir the pod's user can write
                yield Loop(
                    plan, container, mlflow, PredictionStore(store_uri), Path(scratch), deadline
                )
    finally:
        stop_session(process)


@pytest.fixture(scope="module")
def registered(loop: Loop) -> Loop:
    """Versions 1 (production) and 2 (challenger), trained by `python -m training` in the image."""
    for name, extra in (("train-1", ()), ("train-2", ("--random-state=7",))):
        run = loop.run(loop.command("python", "-m", "training", "--n-estimators=5", *extra), name)
        assert run.code == 0, run.output
        print(f"python -m training in the image: {run.seconds:.0f}s")
    loop.mlflow.set_alias(MODEL, "challenger", "2")
    return loop


def test_the_image_runs_as_10001_and_by_default_only_prints_the_judges_options(
    training_image: str,
) -> None:
    out = docker("run", "--rm", "--read-only", training_image)
    assert "usage: make judge ARGS=... / python -m training.judge" in out
    assert docker("run", "--rm", "--read-only", training_image, "id", "-u") == str(APP_UID)
    labels = docker("image", "inspect", "-f", "{{ json .Config.Labels }}", training_image)
    assert '"org.opencontainers.image.title":"mlops-model-training"' in labels
    assert '"org.opencontainers.image.revision":"' in labels
    size = int(docker("image", "inspect", "-f", "{{ .Size }}", training_image))
    print(f"{training_image}: {size} bytes ({size / 1e6:.0f} MB)")


def test_without_labels_the_judge_does_nothing_and_says_why(registered: Loop) -> None:
    run = registered.run(registered.container, "judge-no-labels")
    assert run.code == 0, run.output
    assert (
        "version 2 against production version 1: 0 paired labels; the test needs at least 200: "
        "not enough evidence; production unchanged"
    ) in run.output
    assert "production" in registered.mlflow.model_version(MODEL, "1")["aliases"]
    print(f"judge without labels: {run.seconds:.0f}s")


def test_with_enough_evidence_the_judge_promotes_the_challenger(registered: Loop) -> None:
    # 300 labelled rows answered by both; the challenger is right far more often (minLabels 200).
    record(registered.store, 300, challenger="2", champion_right=0.6, challenger_right=0.97,
           seed=2)  # fmt: skip
    run = registered.run(registered.container, "judge-evidence")
    assert run.code == 0, run.output
    assert f"production of {MODEL}: version 1 -> version 2" in run.output
    assert "better (McNemar exact test" in run.output
    assert "production" in registered.mlflow.model_version(MODEL, "2")["aliases"]
    assert "challenger" in registered.mlflow.model_version(MODEL, "1")["aliases"]
    print(f"judge with evidence: {run.seconds:.0f}s")
