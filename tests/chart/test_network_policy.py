"""Who can reach what: the rendered NetworkPolicies, evaluated against the labels of the pods the
chart itself renders (so a label changed on one side and not the other fails here)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from tests.chart.conftest import NAMESPACE, Manifest, render

pytestmark = pytest.mark.chart

PROD = ("values-production.yaml",)
STAGING = ("values-staging.yaml",)
ALL = ("ci/all-features-values.yaml",)
TUNNEL = ["cloudflared.enabled=true", "cloudflared.existingSecret=platform-cloudflared-token"]
API_CLIENT_LABEL = "platform.mlops/api-client"
MLFLOW_CLIENT_LABEL = "platform.mlops/mlflow-client"


@dataclass(frozen=True)
class Pod:
    labels: dict[str, str]
    namespace: str = NAMESPACE
    namespace_labels: dict[str, str] = field(default_factory=dict)

    def namespace_labels_or_default(self) -> dict[str, str]:
        return self.namespace_labels or {"kubernetes.io/metadata.name": self.namespace}


def selector_matches(selector: Manifest, labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels and matchExpressions); {} matches everything."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values")
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def peer_matches(peer: Manifest, policy_namespace: str, source: Pod) -> bool:
    assert "ipBlock" not in peer, "the chart admits pods, never address ranges"
    if "namespaceSelector" in peer:
        if not selector_matches(peer["namespaceSelector"], source.namespace_labels_or_default()):
            return False
    elif source.namespace != policy_namespace:
        return False
    return selector_matches(peer.get("podSelector", {}), source.labels)


def admits(objs: list[Manifest], target: Pod, source: Pod, port: str) -> bool:
    """Whether ingress from `source` to `target` on `port` is allowed by the rendered policies."""
    policies = [
        o
        for o in objs
        if o["kind"] == "NetworkPolicy"
        and o["metadata"]["namespace"] == target.namespace
        and "Ingress" in o["spec"].get("policyTypes", ["Ingress"])
        and selector_matches(o["spec"]["podSelector"], target.labels)
    ]
    if not policies:
        return True  # no policy selects the pod: Kubernetes lets everything in
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            ports = rule.get("ports")
            if ports and not any(p.get("port") in (port, None) for p in ports):
                continue
            peers = rule.get("from")
            if not peers or any(
                peer_matches(p, policy["metadata"]["namespace"], source) for p in peers
            ):
                return True
    return False


def rendered_pods(objs: list[Manifest]) -> dict[str, Pod]:
    """Every pod the chart renders, by its `app.kubernetes.io/name` label."""
    pods = {}
    for o in objs:
        if o["kind"] in ("Deployment", "Job"):
            labels = o["spec"]["template"]["metadata"]["labels"]
        elif o["kind"] == "CronJob":
            labels = o["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
        elif o["kind"] == "Pod":
            labels = o["metadata"]["labels"]
        else:
            continue
        pods[labels["app.kubernetes.io/name"]] = Pod(dict(labels))
    return pods


def stranger(**labels: str) -> Pod:
    """Some other workload in the release namespace."""
    return Pod({"app.kubernetes.io/name": "something-else", **labels})


OPERATOR_PROMETHEUS = Pod(
    {"app.kubernetes.io/name": "prometheus"},
    namespace="monitoring",
    namespace_labels={"kubernetes.io/metadata.name": "monitoring"},
)


def reach(objs: list[Manifest], target: str, port: str = "http") -> dict[str, bool]:
    """For each rendered pod and a few outsiders: may it open a connection to `target`?"""
    pods = rendered_pods(objs)
    sources = {
        **pods,
        "stranger": stranger(),
        "api-client": stranger(**{API_CLIENT_LABEL: "true"}),
        "mlflow-client": stranger(**{MLFLOW_CLIENT_LABEL: "true"}),
        "mlflow-client-elsewhere": Pod({MLFLOW_CLIENT_LABEL: "true"}, namespace="other"),
        "api-client-elsewhere": Pod({API_CLIENT_LABEL: "true"}, namespace="other"),
        "operator-prometheus": OPERATOR_PROMETHEUS,
    }
    return {name: admits(objs, pods[target], pod, port) for name, pod in sources.items()}


def allowed(matrix: dict[str, bool]) -> set[str]:
    return {name for name, ok in matrix.items() if ok}


# --- the API -----------------------------------------------------------------------------


def test_production_api_admits_the_tunnel_prometheus_the_test_pod_and_labelled_clients() -> None:
    objs = render(PROD, operator=True)
    assert allowed(reach(objs, "api")) == {
        "cloudflared",
        "operator-prometheus",
        "api-test",
        "api-client",
    }


def test_standalone_api_admits_the_release_prometheus() -> None:
    objs = render(STAGING)
    assert allowed(reach(objs, "api")) == {"cloudflared", "prometheus", "api-test", "api-client"}


def test_the_api_without_a_tunnel_route_does_not_admit_the_tunnel() -> None:
    objs = render(sets=[*TUNNEL, "cloudflared.hostnames.grafana=grafana.example.com"])
    assert "cloudflared" in rendered_pods(objs)
    assert not reach(objs, "api")["cloudflared"]


# --- MLflow ------------------------------------------------------------------------------


def test_production_mlflow_admits_the_api_the_tunnel_the_user_job_and_training_clients() -> None:
    objs = render(PROD, operator=True)
    assert allowed(reach(objs, "mlflow")) == {
        "api",
        "cloudflared",
        "mlflow-reader",
        "mlflow-client",
        "operator-prometheus",  # scrapes MLflow's /metrics
    }


def test_mlflow_admits_the_tunnel_only_when_it_is_published() -> None:
    hidden = render(sets=[*TUNNEL, "cloudflared.hostnames.api=api.example.com"])
    assert allowed(reach(hidden, "mlflow")) == {"api", "mlflow-client", "prometheus"}
    published = render(STAGING)
    assert reach(published, "mlflow")["cloudflared"]


def test_mlflow_without_the_api_admits_only_its_clients() -> None:
    objs = render(sets=["api.enabled=false", "monitoring.enabled=false"])
    assert allowed(reach(objs, "mlflow")) == {"mlflow-client"}


def test_the_judge_reaches_the_api_and_mlflow_when_it_runs() -> None:
    objs = render(ALL)
    assert "judge" in rendered_pods(objs)
    assert reach(objs, "api")["judge"]
    assert reach(objs, "mlflow")["judge"]
    assert "judge" not in allowed(reach(render(STAGING), "mlflow"))


# --- the rest ------------------------------------------------------------------------------


def test_cloudflared_metrics_admit_only_prometheus() -> None:
    assert allowed(reach(render(PROD, operator=True), "cloudflared", "metrics")) == {
        "operator-prometheus"
    }
    assert allowed(reach(render(STAGING), "cloudflared", "metrics")) == {"prometheus"}


def test_standalone_prometheus_admits_grafana_and_grafana_the_tunnel() -> None:
    objs = render(STAGING)
    assert allowed(reach(objs, "prometheus")) == {"grafana"}
    assert allowed(reach(objs, "grafana")) == {"cloudflared"}
    assert allowed(reach(render(), "grafana")) == set()


SCENARIOS: list[tuple[Sequence[str], Sequence[str], bool]] = [
    ((), (), False),
    ((), (), True),
    (STAGING, (), False),
    (PROD, (), True),
    (ALL, (), False),
    ((), ("api.enabled=false", "monitoring.enabled=false"), False),
]


@pytest.mark.parametrize(("values", "sets", "operator"), SCENARIOS)
def test_no_policy_admits_everyone(
    values: Sequence[str], sets: Sequence[str], operator: bool
) -> None:
    """No empty peer, no rule without peers (both mean "everyone" to Kubernetes)."""
    policies = [o for o in render(values, sets, operator) if o["kind"] == "NetworkPolicy"]
    assert policies
    for policy in policies:
        name = policy["metadata"]["name"]
        assert policy["spec"]["podSelector"]["matchLabels"], name
        for rule in policy["spec"]["ingress"]:
            assert rule.get("from"), f"{name}: a rule without peers admits every source"
            for peer in rule["from"]:
                for selector in ("podSelector", "namespaceSelector"):
                    if selector in peer:
                        assert peer[selector], f"{name}: an empty {selector} admits everyone"


def test_every_server_has_a_policy_and_switching_them_off_removes_them() -> None:
    objs = render(STAGING)
    selected = {
        o["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
        for o in objs
        if o["kind"] == "NetworkPolicy"
    }
    assert selected == {"api", "mlflow", "cloudflared", "prometheus", "grafana"}
    off = render(STAGING, ["global.networkPolicy.enabled=false"])
    assert not [o for o in off if o["kind"] == "NetworkPolicy"]
