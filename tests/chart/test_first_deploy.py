"""What a first real deploy needs from the rendered chart: a helm test that authenticates and
checks the served model, MLflow auth that starts, scrape targets only for enabled components,
a digest option and an honest version label for every image, image repositories that must be
given, and Helm 3 and 4 rendering the same manifests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.chart.conftest import (
    CHART,
    IMAGE_SETS,
    SCENARIOS,
    TOOLS,
    Manifest,
    container,
    find,
    helm,
    render,
    template_args,
)

pytestmark = pytest.mark.chart

PROD = ("values-production.yaml",)
STAGING = ("values-staging.yaml",)
ALL = ("ci/all-features-values.yaml",)
DIGEST = "sha256:" + "ab" * 32
HELM3 = TOOLS / "bin" / "helm3"


def helm_test_pod(objs: list[Manifest]) -> Manifest:
    return find(objs, "Pod", "platform-api-test")


# --- helm test ----------------------------------------------------------------------------------


def test_helm_test_reads_the_api_key_from_the_secret_the_api_reads() -> None:
    objs = render(PROD, operator=True)
    api = find(objs, "Deployment", "platform-api")["spec"]["template"]["spec"]
    pod = helm_test_pod(objs)["spec"]
    api_volume = next(v for v in api["volumes"] if v["name"] == "api-keys")
    test_volume = next(v for v in pod["volumes"] if v["name"] == "api-keys")
    assert test_volume["secret"] == api_volume["secret"]
    smoke = pod["containers"][0]
    mount = next(m for m in smoke["volumeMounts"] if m["name"] == "api-keys")
    env = {e["name"]: e.get("value") for e in smoke["env"]}
    api_keys_file = find(objs, "ConfigMap", "platform-api")["data"]["API_KEYS_FILE"]
    assert env["API_KEYS_FILE"] == api_keys_file
    assert api_keys_file.startswith(mount["mountPath"] + "/")
    script = "\n".join(smoke["command"])
    assert '"Authorization"' in script
    assert "Bearer" in script


def test_helm_test_has_no_key_when_the_api_needs_none() -> None:
    pod = helm_test_pod(render())["spec"]
    assert "volumes" not in pod
    assert "API_KEYS_FILE" not in {e["name"] for e in pod["containers"][0]["env"]}


def test_helm_test_fails_on_the_fallback_or_another_version() -> None:
    """The test checks /model/info: served from the registry, at the pinned version if pinned."""
    smoke = helm_test_pod(render(PROD, operator=True))["spec"]["containers"][0]
    model_uri = next(e for e in smoke["env"] if e["name"] == "MODEL_URI")
    assert model_uri["valueFrom"]["configMapKeyRef"] == {"name": "platform-api", "key": "MODEL_URI"}
    script = "\n".join(smoke["command"])
    assert '"/model/info"' in script
    assert '"registry"' in script


def _run_test_script(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The test Pod's script against a stand-in API (a tiny HTTP server on loopback)."""
    script = "\n".join(
        helm_test_pod(render(PROD, operator=True))["spec"]["containers"][0]["command"][2:]
    )
    server = tmp_path / "server.py"
    server.write_text(
        """
import http.server, json, os, sys
ANSWERS = json.loads(os.environ["INFO"])  # one answer, or a list served in turn (the last stays)
ANSWERS = ANSWERS if isinstance(ANSWERS, list) else [ANSWERS]
KEY = os.environ["KEY"]
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data))); self.end_headers(); self.wfile.write(data)
    def do_GET(self):
        if self.path == "/ready":  # a probe: open
            return self._send(200, {"status": "ready"})
        if self.headers.get("Authorization") != "Bearer " + KEY:  # metadata needs the key too
            return self._send(401, {"detail": "an API key is required"})
        self._send(200, ANSWERS.pop(0) if len(ANSWERS) > 1 else ANSWERS[0])
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Authorization") != "Bearer " + KEY:
            return self._send(401, {"error": "unauthorized"})
        self._send(200, {"prediction": "setosa"})
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"""
    )
    keys = tmp_path / "api-keys"
    keys.write_text("k1,k2\n")
    proc = subprocess.Popen(
        ["python3", str(server)],
        stdout=subprocess.PIPE,
        text=True,
        env={"INFO": env.pop("INFO"), "KEY": env.pop("KEY")},
    )
    try:
        assert proc.stdout is not None
        port = proc.stdout.readline().strip()
        return subprocess.run(
            ["python3", "-c", script],
            env={
                "BASE_URL": f"http://127.0.0.1:{port}",
                "PREDICT_REQUEST": '{"features": {}}',
                "PREDICTION_FIELD": "prediction",
                "EXPECTED_PREDICTION": "setosa",
                "API_KEYS_FILE": str(keys),
                "REGISTRY_WAIT_SECONDS": "3",
                **env,
            },
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    finally:
        proc.kill()
        proc.wait()


REGISTRY_V1 = '{"source": "registry", "version": "1"}'


@pytest.mark.parametrize(
    ("info", "uri", "key", "ok", "says"),
    [
        (REGISTRY_V1, "models:/iris-classifier/1", "k1", True, "ok"),
        (REGISTRY_V1, "models:/iris-classifier@production", "k1", True, "ok"),
        (
            '{"source": "fallback", "version": "1"}',
            "models:/iris-classifier/1",
            "k1",
            False,
            "fallback",
        ),
        (
            f'[{{"source": "fallback", "version": "1"}}, {REGISTRY_V1}]',
            "models:/iris-classifier/1",
            "k1",
            True,
            "ok",
        ),
        (REGISTRY_V1, "models:/iris-classifier/3", "k1", False, "version"),
        (REGISTRY_V1, "models:/iris-classifier/1", "k9", False, "401"),
    ],
)
def test_helm_test_script_passes_only_on_the_right_model_with_a_key(
    tmp_path: Path, info: str, uri: str, key: str, ok: bool, says: str
) -> None:
    done = _run_test_script(tmp_path, {"INFO": info, "KEY": key, "MODEL_URI": uri})
    assert (done.returncode == 0) is ok, done.stdout + done.stderr
    assert says in done.stdout + done.stderr


# --- MLflow -------------------------------------------------------------------------------------


def test_mlflow_basic_auth_gets_its_static_secret_key_from_the_auth_secret() -> None:
    """MLflow's basic-auth app refuses to start without MLFLOW_FLASK_SERVER_SECRET_KEY."""
    mlflow = container(find(render(PROD, operator=True), "Deployment", "platform-mlflow"), "mlflow")
    env = {e["name"]: e for e in mlflow["env"]}
    assert env["MLFLOW_FLASK_SERVER_SECRET_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "platform-mlflow-admin",
        "key": "flask-secret-key",
    }
    plain = container(find(render(), "Deployment", "platform-mlflow"), "mlflow")
    assert "MLFLOW_FLASK_SERVER_SECRET_KEY" not in {e["name"] for e in plain["env"]}


def test_mlflow_exposes_metrics() -> None:
    mlflow = container(find(render(), "Deployment", "platform-mlflow"), "mlflow")
    assert any(a.startswith("--expose-prometheus=/tmp/") for a in mlflow["args"])


# --- scrape targets only for enabled components ------------------------------------------------


def monitors(objs: list[Manifest]) -> dict[str, Manifest]:
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == "ServiceMonitor"}


def test_service_monitors_only_for_enabled_components() -> None:
    default = monitors(render(operator=True))
    assert set(default) == {"platform-api", "platform-mlflow"}  # cloudflared is off by default
    prod = monitors(render(PROD, operator=True))
    assert set(prod) == {"platform-api", "platform-mlflow", "platform-cloudflared"}
    none = monitors(render(sets=["api.enabled=false", "mlflow.enabled=false"], operator=True))
    assert none == {}


def test_mlflow_service_monitor_logs_in_when_mlflow_auth_is_on() -> None:
    prod = monitors(render(PROD, operator=True))["platform-mlflow"]
    endpoint = prod["spec"]["endpoints"][0]
    assert endpoint["port"] == "http"
    assert endpoint["basicAuth"] == {
        "username": {"name": "platform-mlflow-admin", "key": "username"},
        "password": {"name": "platform-mlflow-admin", "key": "password"},
    }
    assert endpoint["relabelings"] == [
        {"targetLabel": "job", "replacement": "model-platform-mlflow"},
        {"targetLabel": "__address__", "replacement": "platform-mlflow.platform.svc:5000"},
    ]
    assert (
        "basicAuth"
        not in monitors(render(operator=True))["platform-mlflow"]["spec"]["endpoints"][0]
    )


def test_the_operators_prometheus_may_reach_mlflow() -> None:
    """Operator mode scrapes MLflow from the monitoring namespace: its NetworkPolicy admits it."""
    policy = find(render(PROD, operator=True), "NetworkPolicy", "platform-mlflow")
    assert any("namespaceSelector" in peer for peer in policy["spec"]["ingress"][0]["from"])


def test_mlflow_auth_without_scrape_credentials_fails_the_render() -> None:
    result = helm(*template_args(PROD, ["monitoring.mlflowScrape.existingSecret="], operator=True))
    assert result.returncode != 0
    assert "monitoring.mlflowScrape.existingSecret" in result.stderr


def test_standalone_prometheus_finds_every_component_by_dns() -> None:
    objs = render(STAGING)
    config = yaml.safe_load(
        find(objs, "ConfigMap", "platform-prometheus")["data"]["prometheus.yml"]
    )
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    names = {
        job: j["dns_sd_configs"][0]["names"] for job, j in jobs.items() if "dns_sd_configs" in j
    }
    assert names == {
        "model-platform-api": ["platform-api-pods.platform.svc"],
        "model-platform-mlflow": ["platform-mlflow.platform.svc"],
        "model-platform-cloudflared": ["platform-cloudflared.platform.svc"],
    }
    # MLflow checks the Host header against its Service names: the target keeps that name
    assert {"target_label": "__address__", "replacement": "platform-mlflow.platform.svc:5000"} in (
        jobs["model-platform-mlflow"]["relabel_configs"]
    )
    # one record per pod, ready or not
    for service in ("platform-api-pods", "platform-cloudflared"):
        spec = find(objs, "Service", service)["spec"]
        assert spec["clusterIP"] == "None"
        assert spec["publishNotReadyAddresses"] is True
    auth = yaml.safe_load(
        find(render(ALL), "ConfigMap", "platform-prometheus")["data"]["prometheus.yml"]
    )
    login = {j["job_name"]: j for j in auth["scrape_configs"]}["model-platform-mlflow"][
        "basic_auth"
    ]
    assert login == {
        "username_file": "/etc/prometheus/mlflow-auth/username",
        "password_file": "/etc/prometheus/mlflow-auth/password",
    }


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool missing (make system-deps)")
@pytest.mark.parametrize("values", [(), STAGING, ("ci/standalone-values.yaml",)])
def test_promtool_accepts_the_rendered_standalone_config(
    values: tuple[str, ...], tmp_path: Path
) -> None:
    objs = render(values)
    config = find(objs, "ConfigMap", "platform-prometheus")["data"]["prometheus.yml"]
    # Debian's promtool (2.42) predates basic_auth.username_file, which the Prometheus the chart
    # runs (3.x) reads; the login itself is checked above. The rest of the file is checked here.
    config = config.replace("username_file: /etc/prometheus/mlflow-auth/username", "username: u")
    (tmp_path / "prometheus.yml").write_text(config)
    done = subprocess.run(
        ["promtool", "check", "config", "--syntax-only", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


# --- images: digests, versions, required repositories -------------------------------------------

IMAGES = {
    # values key of the image -> (Deployment, container)
    "api.image": ("platform-api", "api"),
    "mlflow.image": ("platform-mlflow", "mlflow"),
    "monitoring.prometheus.image": ("platform-prometheus", "prometheus"),
    "monitoring.grafana.image": ("platform-grafana", "grafana"),
    "cloudflared.image": ("platform-cloudflared", "cloudflared"),
}


@pytest.mark.parametrize("key", list(IMAGES))
def test_every_image_takes_a_digest(key: str) -> None:
    deployment, name = IMAGES[key]
    objs = render(STAGING, [f"{key}.digest={DIGEST}"])
    image = container(find(objs, "Deployment", deployment), name)["image"]
    assert image.endswith(f"@{DIGEST}"), image


@pytest.mark.parametrize(
    ("deployment", "version"),
    [
        ("platform-mlflow", "3.17.2"),
        ("platform-prometheus", "3.5.0"),
        ("platform-grafana", "12.1.1"),
        ("platform-cloudflared", "2025.8.1"),
    ],
)
def test_each_component_is_labelled_with_its_own_image_version(
    deployment: str, version: str
) -> None:
    objs = render(STAGING)
    d = find(objs, "Deployment", deployment)
    assert d["metadata"]["labels"]["app.kubernetes.io/version"] == version
    assert d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/version"] == version
    component = d["metadata"]["labels"]["app.kubernetes.io/name"]
    for o in objs:
        if o["metadata"].get("labels", {}).get("app.kubernetes.io/name") == component:
            assert o["metadata"]["labels"]["app.kubernetes.io/version"] == version, o["metadata"][
                "name"
            ]


def test_the_api_version_label_follows_its_image_tag() -> None:
    objs = render(PROD, ["api.image.tag=0.4.2"], operator=True)
    assert (
        find(objs, "Deployment", "platform-api")["metadata"]["labels"]["app.kubernetes.io/version"]
        == "0.4.2"
    )
    # a full commit SHA, as the deploy workflow sets it, is a valid label value too
    sha = "0123456789abcdef0123456789abcdef01234567"
    objs = render(PROD, [f"api.image.tag={sha}"], operator=True)
    assert helm_test_pod(objs)["metadata"]["labels"]["app.kubernetes.io/version"] == sha


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("api.image.repository", "api.image.repository is required"),
        ("mlflow.image.repository", "mlflow.image.repository is required"),
    ],
)
def test_image_repositories_are_required_values(key: str, message: str) -> None:
    sets = [s for s in IMAGE_SETS if not s.startswith(f"{key}=")] + [f"{key}="]
    result = helm(
        "template",
        "platform",
        str(CHART),
        "--namespace",
        "platform",
        *[a for s in sets for a in ("--set", s)],
    )
    assert result.returncode != 0
    assert message in result.stderr


# --- Helm 3 and Helm 4 ---------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_helm_3_and_helm_4_render_the_same_manifests(scenario: str) -> None:
    values, operator = SCENARIOS[scenario]
    args = template_args(values, operator=operator)
    four = helm(*args)
    three = subprocess.run([str(HELM3), *args], capture_output=True, text=True, check=False)
    assert four.returncode == 0, four.stderr
    assert three.returncode == 0, three.stderr
    assert three.stdout == four.stdout
