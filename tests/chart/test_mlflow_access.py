"""MLflow's authentication: never published without it, and the API signs in as a read-only user
that a hook Job creates; the admin credentials stay with MLflow."""

from __future__ import annotations

import re
from collections.abc import Sequence

import pytest

from tests.chart.conftest import CHART, Manifest, container, find, helm, render, template_args

pytestmark = pytest.mark.chart

PROD = ("values-production.yaml",)
STAGING = ("values-staging.yaml",)
ALL = ("ci/all-features-values.yaml",)
PUBLISHED = [
    "cloudflared.enabled=true",
    "cloudflared.existingSecret=platform-cloudflared-token",
    "cloudflared.hostnames.mlflow=mlflow.example.com",
]
AUTH = [
    "mlflow.auth.enabled=true",
    "mlflow.auth.existingSecret=platform-mlflow-admin",
    "mlflow.auth.reader.existingSecret=platform-mlflow-reader",
    "api.mlflow.existingSecret=platform-mlflow-reader",
    "monitoring.mlflowScrape.existingSecret=platform-mlflow-admin",
]
SCRIPT = CHART / "charts" / "mlflow" / "files" / "mlflow_reader.py"


def secret_refs(c: Manifest) -> dict[str, tuple[str, str]]:
    """Environment variable -> (Secret, key) for every variable read from a Secret."""
    return {
        e["name"]: (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for e in c.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }


def failure(sets: Sequence[str], values: Sequence[str] = ()) -> str:
    """helm template's error for values it must refuse."""
    args = template_args(values, sets)
    result = helm(*args)
    assert result.returncode != 0, f"helm template accepted {values} {sets}"
    return result.stderr


# --- 1. MLflow is published only behind authentication -----------------------------------


def test_publishing_mlflow_without_authentication_is_refused() -> None:
    error = failure(PUBLISHED)
    assert "cloudflared.hostnames.mlflow publishes MLflow without authentication" in error
    assert "mlflow.auth.enabled" in error
    assert "cloudflared.mlflowAccessPolicy" in error


def test_mlflow_is_published_with_basic_auth_or_an_acknowledged_access_policy() -> None:
    with_auth = render(sets=[*PUBLISHED, *AUTH])
    mlflow = container(find(with_auth, "Deployment", "platform-mlflow"), "mlflow")
    assert "--app-name=basic-auth" in mlflow["args"]
    acknowledged = render(
        sets=[*PUBLISHED, "cloudflared.mlflowAccessPolicy=Cloudflare Access app mlflow"]
    )
    find(acknowledged, "Deployment", "platform-mlflow")
    # Not publishing it needs neither.
    render(sets=[*PUBLISHED[:2], "cloudflared.hostnames.api=api.example.com"])


@pytest.mark.parametrize(("values", "operator"), [(STAGING, False), (PROD, True), (ALL, False)])
def test_every_environment_that_publishes_mlflow_turns_basic_auth_on(
    values: Sequence[str], operator: bool
) -> None:
    objs = render(values, operator=operator)
    routes = find(objs, "ConfigMap", "platform-cloudflared")["data"]["config.yaml"]
    assert "http://platform-mlflow:5000" in routes
    mlflow = container(find(objs, "Deployment", "platform-mlflow"), "mlflow")
    assert "--app-name=basic-auth" in mlflow["args"]


def test_basic_auth_gets_the_static_secret_key_mlflow_needs_to_start() -> None:
    """`mlflow server --app-name basic-auth` exits at once without MLFLOW_FLASK_SERVER_SECRET_KEY."""
    mlflow = container(find(render(PROD, operator=True), "Deployment", "platform-mlflow"), "mlflow")
    refs = secret_refs(mlflow)
    assert refs["MLFLOW_FLASK_SERVER_SECRET_KEY"] == ("platform-mlflow-admin", "flask-secret-key")
    assert refs["MLFLOW_AUTH_ADMIN_PASSWORD"] == ("platform-mlflow-admin", "password")
    off = container(find(render(), "Deployment", "platform-mlflow"), "mlflow")
    assert "MLFLOW_FLASK_SERVER_SECRET_KEY" not in secret_refs(off)


# --- 2. The API reads with a user of its own -------------------------------------------------


@pytest.mark.parametrize(("values", "operator"), [(PROD, True), (STAGING, False)])
def test_the_api_signs_in_as_the_read_only_user_never_the_admin(
    values: Sequence[str], operator: bool
) -> None:
    objs = render(values, operator=operator)
    admin_secret = secret_refs(container(find(objs, "Deployment", "platform-mlflow"), "mlflow"))[
        "MLFLOW_AUTH_ADMIN_PASSWORD"
    ][0]
    api = secret_refs(container(find(objs, "Deployment", "platform-api"), "api"))
    reader_secret = api["MLFLOW_TRACKING_PASSWORD"][0]
    assert reader_secret != admin_secret
    assert api["MLFLOW_TRACKING_USERNAME"] == (reader_secret, "username")
    job = find(objs, "Job", "platform-mlflow-reader")
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["reader-secret"]["secret"]["secretName"] == reader_secret
    assert volumes["admin-secret"]["secret"]["secretName"] == admin_secret


def test_the_api_is_refused_the_admin_secret() -> None:
    error = failure([*AUTH, "api.mlflow.existingSecret=platform-mlflow-admin"])
    assert "api.mlflow.existingSecret is the MLflow admin's Secret" in error


def test_basic_auth_without_credentials_for_the_api_is_refused() -> None:
    error = failure([*AUTH, "api.mlflow.existingSecret="])
    assert "api.mlflow.existingSecret is empty" in error


@pytest.mark.parametrize(
    "sets",
    [
        ["api.model.uri=models:/wine-classifier/2"],
        ["api.challenger.mode=shadow", "api.challenger.uri=models:/iris-next@challenger"],
    ],
)
def test_the_reader_must_be_granted_every_model_the_api_serves(sets: list[str]) -> None:
    error = failure([*AUTH, *sets])
    assert "mlflow.auth.reader.models" in error
    fixed = render(
        sets=[*AUTH, *sets, "mlflow.auth.reader.models={iris-classifier,wine-classifier,iris-next}"]
    )
    job = find(fixed, "Job", "platform-mlflow-reader")
    env = {
        e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["MLFLOW_READER_MODELS"] == "iris-classifier,wine-classifier,iris-next"


def test_the_reader_job_is_a_bounded_restricted_hook_running_the_shipped_script() -> None:
    objs = render(PROD, operator=True)
    job = find(objs, "Job", "platform-mlflow-reader")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "post-install,post-upgrade"
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    spec = job["spec"]
    assert 0 < spec["backoffLimit"] <= 6
    assert 0 < spec["activeDeadlineSeconds"] <= 900
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    (c,) = pod["containers"]
    mlflow = container(find(objs, "Deployment", "platform-mlflow"), "mlflow")
    assert c["image"] == mlflow["image"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert c["resources"]["limits"]["memory"]
    assert c["resources"]["requests"]["cpu"]
    # Secrets arrive as files, so no password sits in the environment.
    assert secret_refs(c) == {}
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["MLFLOW_TRACKING_URI"] == "http://platform-mlflow:5000"
    assert env["MLFLOW_READER_MODELS"] == "iris-classifier"
    assert not [n for n in env if re.search("PASSWORD$|USERNAME$", n)]
    # The script the Job runs is the file in the chart, shipped in a ConfigMap.
    script_mount = next(m for m in c["volumeMounts"] if m["name"] == "script")
    assert c["command"] == ["python", f"{script_mount['mountPath']}/mlflow_reader.py"]
    shipped = find(objs, "ConfigMap", "platform-mlflow-reader")["data"]["mlflow_reader.py"]
    assert shipped == SCRIPT.read_text()


def test_no_reader_job_without_basic_auth_or_without_its_secret() -> None:
    assert not [o for o in render() if o["kind"] == "Job"]
    objs = render(sets=[*AUTH[:2], *AUTH[4:], "api.mlflow.existingSecret=platform-mlflow-client"])
    assert not [o for o in objs if o["kind"] == "Job"]
