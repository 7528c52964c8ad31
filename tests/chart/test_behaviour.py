"""Assertions on the rendered objects: what each behaviour of the chart promises."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.chart.conftest import (
    CHART,
    SCENARIOS,
    Manifest,
    container,
    find,
    helm,
    render,
    scenario_render,
    template_args,
)

pytestmark = pytest.mark.chart

PROD = ("values-production.yaml",)
STAGING = ("values-staging.yaml",)
ALL = ("ci/all-features-values.yaml",)
API_IMAGE = "ghcr.io/owner/mlops-model-platform"


def api_config(objs: list[Manifest]) -> dict[str, str]:
    return dict(find(objs, "ConfigMap", "platform-api")["data"])


def pod_template(objs: list[Manifest], name: str = "platform-api") -> Manifest:
    return dict(find(objs, "Deployment", name)["spec"]["template"])


def workloads(objs: list[Manifest]) -> list[tuple[str, Manifest]]:
    """(name, pod spec) of every Deployment and Pod."""
    out = []
    for o in objs:
        if o["kind"] == "Deployment":
            out.append((o["metadata"]["name"], o["spec"]["template"]["spec"]))
        elif o["kind"] == "Pod":
            out.append((o["metadata"]["name"], o["spec"]))
    return out


# --- model and image pinning -------------------------------------------------------------


def test_production_pins_the_model_version_and_the_image() -> None:
    objs = render(PROD, operator=True)
    config = api_config(objs)
    assert (
        config["MODEL_URI"] == "models:/iris-classifier/1"
    )  # the first version on a fresh cluster
    assert config["MODEL_POLL_SECONDS"] == "0"
    prod_values = yaml.safe_load((CHART / "values-production.yaml").read_text())
    assert prod_values["api"]["image"]["tag"], "production must pin the image tag itself"
    image = container(find(objs, "Deployment", "platform-api"), "api")["image"]
    assert image == f"{API_IMAGE}:{prod_values['api']['image']['tag']}"
    template = pod_template(objs)
    assert template["metadata"]["annotations"]["platform.mlops/model-uri"] == (
        "models:/iris-classifier/1"
    )


def test_staging_follows_an_alias() -> None:
    assert re.fullmatch(
        r"models:/iris-classifier@(staging|production)", api_config(render(STAGING))["MODEL_URI"]
    )


def test_a_digest_wins_over_the_tag() -> None:
    objs = render(ALL)
    image = container(find(objs, "Deployment", "platform-api"), "api")["image"]
    assert image.startswith(f"{API_IMAGE}@sha256:")


def test_changing_the_model_version_changes_the_pod_template() -> None:
    """So that `helm rollback` to the previous revision also restores the previous model."""
    v3 = pod_template(render(PROD, operator=True))  # pins version 1
    v4 = pod_template(render(PROD, ["api.model.uri=models:/iris-classifier/4"], operator=True))
    assert v3 != v4
    assert (
        v3["metadata"]["annotations"]["checksum/config"]
        != (v4["metadata"]["annotations"]["checksum/config"])
    )
    assert v4["metadata"]["annotations"]["platform.mlops/model-uri"] == "models:/iris-classifier/4"


def test_changing_the_image_changes_the_pod_template() -> None:
    a = pod_template(render(PROD, operator=True))
    b = pod_template(render(PROD, ["api.image.tag=0.2.0"], operator=True))
    assert (
        container({"spec": {"template": a}}, "api")["image"]
        != (container({"spec": {"template": b}}, "api")["image"])
    )


@pytest.mark.parametrize(
    "setting",
    [
        "api.server.maxBatch=10",
        "api.model.pollSeconds=5",
        "api.drift.window=500",
        "api.server.logLevel=warning",
    ],
)
def test_checksum_rolls_the_pods_when_a_setting_changes(setting: str) -> None:
    before = pod_template(render())["metadata"]["annotations"]["checksum/config"]
    after = pod_template(render(sets=[setting]))["metadata"]["annotations"]["checksum/config"]
    assert before != after


def test_checksum_is_stable_when_nothing_of_the_api_changes() -> None:
    before = pod_template(render())["metadata"]["annotations"]["checksum/config"]
    after = pod_template(render(sets=["mlflow.workers=4"]))["metadata"]["annotations"]
    assert after["checksum/config"] == before


def test_server_settings_come_from_values() -> None:
    config = api_config(
        render(
            ALL,
            [
                "api.challenger.mode=split",
                "api.challenger.traffic=0.25",
                "api.drift.window=2000",
                "api.drift.intervalSeconds=20",
                "api.server.maxConcurrency=64",
                "api.server.maxBodyBytes=2097152",
                "api.server.maxBatch=50",
            ],
        )
    )
    assert config["CHALLENGER_MODE"] == "split"
    assert config["CHALLENGER_URI"] == "models:/iris-classifier@challenger"
    assert config["CHALLENGER_TRAFFIC"] == "0.25"
    assert config["DRIFT_WINDOW"] == "2000"
    assert config["DRIFT_INTERVAL_SECONDS"] == "20"
    assert config["MAX_CONCURRENCY"] == "64"
    assert config["MAX_BODY_BYTES"] == "2097152"
    assert config["MAX_BATCH"] == "50"
    assert config["WORKERS"] == "1"
    assert config["PORT"] == "8000"
    assert config["API_KEYS_FILE"] == "/etc/platform/api-keys/api-keys"
    # The server refuses WORKERS > 1 (per-process metrics); the schema refuses it first.
    with pytest.raises(AssertionError, match="workers"):
        render(sets=["api.server.workers=2"])


# --- the API Deployment ------------------------------------------------------------------


def test_api_deployment_rolls_without_losing_capacity_and_drains() -> None:
    objs = render()
    deployment = find(objs, "Deployment", "platform-api")
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    spec = deployment["spec"]["template"]["spec"]
    api = container(deployment, "api")
    sleep = api["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert sleep > 0
    assert spec["terminationGracePeriodSeconds"] > sleep


def test_api_probes() -> None:
    api = container(find(render(), "Deployment", "platform-api"), "api")
    assert api["startupProbe"]["httpGet"]["path"] == "/health"
    assert api["livenessProbe"]["httpGet"]["path"] == "/health"
    assert api["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert api["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]


def test_api_pod_security() -> None:
    objs = render()
    spec = pod_template(objs)["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 10001
    assert spec["securityContext"]["runAsGroup"] == 10001
    assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert spec["automountServiceAccountToken"] is False
    assert find(objs, "ServiceAccount", "platform-api")["automountServiceAccountToken"] is False
    api = container(find(objs, "Deployment", "platform-api"), "api")
    sc = api["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    tmp = next(m for m in api["volumeMounts"] if m["mountPath"] == "/tmp")
    volume = next(v for v in spec["volumes"] if v["name"] == tmp["name"])
    assert "emptyDir" in volume
    assert api["resources"]["requests"]
    assert api["resources"]["limits"]


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_pod_is_restricted_and_bounded(scenario: str) -> None:
    for name, spec in workloads(scenario_render(scenario)):
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            assert c["resources"]["limits"]["memory"], name
            assert c["resources"]["requests"]["cpu"], name


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_image_is_pinned(scenario: str) -> None:
    for name, spec in workloads(scenario_render(scenario)):
        for c in spec["containers"]:
            image = c["image"]
            assert "@sha256:" in image or re.search(r":[\w][\w.-]*$", image), (name, image)
            assert not image.endswith(":latest"), (name, image)


def test_api_service_pdb_hpa() -> None:
    objs = render(PROD, operator=True)
    service = find(objs, "Service", "platform-api")
    assert service["spec"]["ports"][0]["name"] == "http"
    assert find(objs, "PodDisruptionBudget", "platform-api")["spec"]["maxUnavailable"] == 1
    hpa = find(objs, "HorizontalPodAutoscaler", "platform-api")
    assert hpa["spec"]["minReplicas"] == 3
    assert "replicas" not in find(objs, "Deployment", "platform-api")["spec"]
    assert not [o for o in render() if o["kind"] == "HorizontalPodAutoscaler"]


def test_api_network_policy_admits_the_namespace_and_prometheus() -> None:
    policy = find(render(PROD, operator=True), "NetworkPolicy", "platform-api")
    peers = policy["spec"]["ingress"][0]["from"]
    assert {"podSelector": {}} in peers
    assert any("namespaceSelector" in p for p in peers)
    assert policy["spec"]["ingress"][0]["ports"] == [{"port": "http", "protocol": "TCP"}]
    off = render(sets=["global.networkPolicy.enabled=false"])
    assert not [o for o in off if o["kind"] == "NetworkPolicy"]


def test_helm_test_pod_calls_ready_and_predict() -> None:
    pod = find(render(), "Pod", "platform-api-test")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = "\n".join(pod["spec"]["containers"][0]["command"])
    assert '"/ready"' in script
    assert '"/predict"' in script
    assert "sys.exit" in script
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["BASE_URL"] == "http://platform-api:8000"
    assert env["EXPECTED_PREDICTION"] == "setosa"


# --- MLflow ------------------------------------------------------------------------------


def test_mlflow_single_replica_sqlite_on_a_pvc() -> None:
    objs = render()
    deployment = find(objs, "Deployment", "platform-mlflow")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    args = container(deployment, "mlflow")["args"]
    assert "--backend-store-uri=sqlite:////mlflow/mlflow.db" in args
    assert "--serve-artifacts" in args
    assert "--artifacts-destination=/mlflow/artifacts" in args
    assert find(objs, "PersistentVolumeClaim", "platform-mlflow")
    # the platform's MLflow image (the official one lacks auth, database and S3 support)
    assert container(deployment, "mlflow")["image"] == (
        "ghcr.io/owner/mlops-model-platform/mlflow:3.17.2"
    )
    # The API reaches MLflow by its Service name.
    assert api_config(objs)["MLFLOW_TRACKING_URI"] == "http://platform-mlflow:5000"
    assert find(objs, "Service", "platform-mlflow")["spec"]["ports"][0]["port"] == 5000
    allowed = next(a for a in args if a.startswith("--allowed-hosts="))
    assert "platform-mlflow:*" in allowed


def test_mlflow_external_database_s3_and_auth_from_existing_secrets() -> None:
    objs = render(ALL)
    mlflow = container(find(objs, "Deployment", "platform-mlflow"), "mlflow")
    args = mlflow["args"]
    assert "--backend-store-uri=$(MLFLOW_BACKEND_STORE_URI)" in args
    assert "--artifacts-destination=s3://models/mlflow" in args
    assert "--app-name=basic-auth" in args
    refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in mlflow["env"] if "valueFrom" in e
    }
    assert refs == {
        "MLFLOW_BACKEND_STORE_URI": "platform-mlflow-db",
        "AWS_ACCESS_KEY_ID": "platform-mlflow-s3",
        "AWS_SECRET_ACCESS_KEY": "platform-mlflow-s3",
        "MLFLOW_AUTH_ADMIN_USERNAME": "platform-mlflow-admin",
        "MLFLOW_AUTH_ADMIN_PASSWORD": "platform-mlflow-admin",
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "platform-mlflow-admin",
    }
    api = container(find(objs, "Deployment", "platform-api"), "api")
    api_refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in api["env"] if "valueFrom" in e}
    assert api_refs["MLFLOW_TRACKING_PASSWORD"] == {
        "name": "platform-mlflow-client",
        "key": "password",
    }


# --- cloudflared -------------------------------------------------------------------------


def test_cloudflared_token_from_secret_routes_and_production_redundancy() -> None:
    objs = render(PROD, operator=True)
    deployment = find(objs, "Deployment", "platform-cloudflared")
    assert deployment["spec"]["replicas"] == 2
    assert find(objs, "PodDisruptionBudget", "platform-cloudflared")
    env = container(deployment, "cloudflared")["env"]
    assert env == [
        {
            "name": "TUNNEL_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": "platform-cloudflared-token", "key": "token"}},
        }
    ]
    config = yaml.safe_load(find(objs, "ConfigMap", "platform-cloudflared")["data"]["config.yaml"])
    assert config["ingress"] == [
        {"hostname": "api.example.com", "service": "http://platform-api:8000"},
        {"hostname": "mlflow.example.com", "service": "http://platform-mlflow:5000"},
        {"service": "http_status:404"},
    ]
    monitor = find(objs, "ServiceMonitor", "platform-cloudflared")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    staging = yaml.safe_load(
        find(render(STAGING), "ConfigMap", "platform-cloudflared")["data"]["config.yaml"]
    )
    assert {
        "hostname": "grafana.staging.example.com",
        "service": "http://platform-grafana:3000",
    } in (staging["ingress"])


# --- switches and secrets ----------------------------------------------------------------


@pytest.mark.parametrize("component", ["api", "mlflow", "monitoring", "cloudflared"])
def test_disabled_components_render_nothing(component: str) -> None:
    values = ALL  # everything on, then switch one off
    on = render(values)
    off = render(values, [f"{component}.enabled=false"])

    def of(objs: list[Manifest]) -> list[Manifest]:
        return [
            o for o in objs if o["metadata"]["labels"]["helm.sh/chart"].startswith(f"{component}-")
        ]

    assert of(on), f"{component} renders nothing even when enabled"
    assert of(off) == []
    assert len(off) == len(on) - len(of(on))


def test_monitoring_off_renders_no_monitoring_objects() -> None:
    for operator in (False, True):
        kinds = {o["kind"] for o in render(sets=["monitoring.enabled=false"], operator=operator)}
        assert not kinds & {"ServiceMonitor", "PrometheusRule", "Role", "RoleBinding"}


SENSITIVE_ENV = re.compile(r"PASSWORD|TOKEN|SECRET|API_KEYS$|ACCESS_KEY|BACKEND_STORE_URI")


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_secrets_never_rendered(scenario: str) -> None:
    objs = scenario_render(scenario)
    assert not [o for o in objs if o["kind"] == "Secret"]
    for name, spec in workloads(objs):
        for c in spec["containers"]:
            for e in c.get("env", []):
                if SENSITIVE_ENV.search(e["name"]):
                    assert "value" not in e, f"{name}: {e['name']} has a literal value"
                    assert "secretKeyRef" in e["valueFrom"], f"{name}: {e['name']}"


def test_values_cannot_carry_secret_material() -> None:
    """Secret-like schema keys only name existing Secrets; a secret value is refused."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    names: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            names.update(node.get("properties", {}))
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(schema)
    secretish = {n for n in names if re.search(r"(?i)password|token|secret|credential", n)}
    # The External Secrets values name Secrets, their keys and the store: no material either.
    references = {"externalSecrets", "secretStore", "secretStoreRef", "secrets", "secretKey"}
    assert secretish == {"existingSecret", "imagePullSecrets"} | references
    for sets in (["cloudflared.token=abc"], ["monitoring.grafana.adminPassword=abc"]):
        result = helm(*template_args(sets=sets))
        assert result.returncode != 0
        assert "not allowed" in result.stderr


# --- monitoring modes --------------------------------------------------------------------


def rules_file() -> dict[str, object]:
    path = CHART / "charts/monitoring/files/rules/platform-alerts.yaml"
    return dict(yaml.safe_load(path.read_text()))


def dashboard_files() -> dict[str, object]:
    folder = CHART / "charts/monitoring/files/dashboards"
    return {p.name: json.loads(p.read_text()) for p in folder.glob("*.json")}


def parsed(data: dict[str, str]) -> dict[str, object]:
    return {name: json.loads(text) for name, text in data.items()}


@pytest.mark.parametrize("scenario", ["operator-forced", "default-operator-detected", "production"])
def test_operator_mode_objects(scenario: str) -> None:
    objs = scenario_render(scenario)
    kinds = {o["kind"] for o in objs}
    assert {"ServiceMonitor", "PrometheusRule"} <= kinds
    names = {o["metadata"]["name"] for o in objs if o["kind"] == "Deployment"}
    assert not names & {"platform-prometheus", "platform-grafana"}
    rule = find(objs, "PrometheusRule", "platform-monitoring")
    assert rule["spec"] == rules_file()
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    monitor = find(objs, "ServiceMonitor", "platform-api")
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint["port"] == "http"
    assert endpoint["relabelings"] == [{"targetLabel": "job", "replacement": "model-platform-api"}]
    dashboards = find(objs, "ConfigMap", "platform-dashboards")
    assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert parsed(dashboards["data"]) == dashboard_files()


@pytest.mark.parametrize("scenario", ["default", "standalone", "staging"])
def test_standalone_mode_objects(scenario: str) -> None:
    objs = scenario_render(scenario)
    assert not {"ServiceMonitor", "PrometheusRule"} & {o["kind"] for o in objs}
    find(objs, "Deployment", "platform-prometheus")
    grafana = find(objs, "Deployment", "platform-grafana")
    rules = find(objs, "ConfigMap", "platform-prometheus-rules")["data"]["platform-alerts.yaml"]
    assert yaml.safe_load(rules) == rules_file()
    dashboards = find(objs, "ConfigMap", "platform-grafana-dashboards")["data"]
    assert parsed(dashboards) == dashboard_files()
    config = yaml.safe_load(
        find(objs, "ConfigMap", "platform-prometheus")["data"]["prometheus.yml"]
    )
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert {"model-platform-api", "model-platform-mlflow", "model-platform-cloudflared"} <= set(
        jobs
    )
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yaml"]
    provisioning = find(objs, "ConfigMap", "platform-grafana")["data"]
    datasource = yaml.safe_load(provisioning["datasources.yaml"])["datasources"][0]
    assert datasource["url"] == "http://platform-prometheus:9090"
    env = {e["name"] for e in container(grafana, "grafana")["env"]}
    assert {"GF_SECURITY_ADMIN_USER", "GF_SECURITY_ADMIN_PASSWORD"} <= env
    # Discovery is by DNS: no Kubernetes API access, so no token and no RBAC.
    assert not {"Role", "RoleBinding", "ServiceAccount"} & {
        o["kind"] for o in objs if "prometheus" in o["metadata"]["name"]
    }
    prometheus = find(objs, "Deployment", "platform-prometheus")
    assert prometheus["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


def test_one_source_for_rules_and_dashboards() -> None:
    """The templates read rules and dashboards from files/ only; no copy lives in a template."""
    templates = Path(CHART / "charts/monitoring/templates")
    text = "".join(p.read_text() for p in templates.iterdir())
    for alert in ("ModelApiHighErrorRate", "ModelFeatureDrift"):
        assert alert not in text
    assert '"panels"' not in text
