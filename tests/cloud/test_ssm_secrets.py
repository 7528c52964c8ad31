"""cloud.ssm_secrets: the chart's externalSecrets.secrets from SSM Parameter Store (moto's server
mode on loopback, checking signatures and deploy/aws/ssm-secrets-policy.json) to Secrets, applied
by the real kubectl with server-side apply to a stand-in API server (no cluster here).

What can fail here: the manifests (schema, content, determinism), the kubectl command line and
its request, idempotence, and that no value ever reaches stdout or stderr.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import kubernetes_validate
import pytest

from cloud.ssm_secrets import (
    FIELD_MANAGER,
    SecretKey,
    SecretsError,
    SecretSpec,
    load_specs,
    mask,
    secret_manifests,
)
from tests.aws_api import REGION, AwsApi, aws_api, create_user
from tests.kube_api import KubeApi, kube_api
from tests.processes import REPO_ROOT

CHART = REPO_ROOT / "charts" / "platform"
AWS_VALUES = CHART / "ci" / "aws-values.yaml"
KUBECTL = REPO_ROOT / ".tools" / "bin" / "kubectl"
POLICY = REPO_ROOT / "deploy" / "aws" / "ssm-secrets-policy.json"
PARAMETERS = {
    "/platform/production/api-keys": "key-one-Zq83,key-two-Lw51",
    "/platform/production/mlflow-admin": json.dumps(
        {"username": "admin", "password": "Pw-9f3!x", "flask-secret-key": "k-51c0ffee7a"}
    ),
    "/platform/production/mlflow-reader": json.dumps(
        {"username": "api-reader-Kq2", "password": "Rd-7c1!q"}
    ),
    "/platform/production/grafana-admin-user": "grafana-boss",
    "/platform/production/grafana-admin-password": "Gr4fana-Secret",
}
VALUES = [
    "key-one-Zq83,key-two-Lw51",
    "Pw-9f3!x",
    "k-51c0ffee7a",
    "api-reader-Kq2",
    "Rd-7c1!q",
    "grafana-boss",
    "Gr4fana-Secret",
]


# --- manifests ----------------------------------------------------------------------------


def test_the_list_is_the_charts_own() -> None:
    specs = load_specs([AWS_VALUES])
    assert [s.name for s in specs] == [
        "platform-api-keys",
        "platform-mlflow-admin",
        "platform-mlflow-reader",
        "platform-grafana-admin",
    ]
    assert specs[1].keys[1] == SecretKey(
        "password", "/platform/production/mlflow-admin", "password"
    )


def test_a_later_values_file_replaces_the_list(tmp_path: Path) -> None:
    override = tmp_path / "override.yaml"
    override.write_text(
        "externalSecrets:\n  secrets:\n    - name: only\n      data:\n"
        "        - {secretKey: k, remoteKey: /p}\n"
    )
    assert load_specs([AWS_VALUES, override]) == [SecretSpec("only", (SecretKey("k", "/p"),))]
    with pytest.raises(SecretsError, match=r"no externalSecrets\.secrets"):
        load_specs([CHART / "values.yaml"])


def test_manifests_are_valid_secrets_and_always_the_same() -> None:
    specs = load_specs([AWS_VALUES])
    first = secret_manifests(specs, PARAMETERS, "platform")
    assert json.dumps(first) == json.dumps(secret_manifests(specs, PARAMETERS, "platform"))
    for manifest in first:
        kubernetes_validate.validate(manifest, "1.35.0", strict=True)
    admin = next(m for m in first if m["metadata"]["name"] == "platform-mlflow-admin")
    decoded = {k: base64.b64decode(v).decode() for k, v in admin["data"].items()}
    assert decoded == {
        "flask-secret-key": "k-51c0ffee7a",
        "password": "Pw-9f3!x",
        "username": "admin",
    }
    assert admin["metadata"]["labels"]["app.kubernetes.io/managed-by"] == FIELD_MANAGER


def test_a_missing_property_is_named_without_the_value() -> None:
    spec = SecretSpec("s", (SecretKey("password", "/p", "password"),))
    with pytest.raises(SecretsError) as raised:
        secret_manifests([spec], {"/p": "plain-secret-text"}, "platform")
    assert "'password'" in str(raised.value)
    assert "plain-secret-text" not in str(raised.value)


def test_mask_hides_plain_and_encoded_values() -> None:
    text = "Secret x: data.k: Invalid value: 'c2VjcmV0' (secret)"
    assert mask(text, ["c2VjcmV0", "secret"]) == (
        "Secret x: data.k: Invalid value: '[value hidden]' ([value hidden])"
    )


# --- against SSM on moto and the real kubectl ---------------------------------------------


@pytest.fixture(scope="module")
def kubectl() -> Path:
    """The pinned kubectl (`make chart-tools`)."""
    subprocess.run([str(REPO_ROOT / "scripts" / "install-chart-tools.sh")], check=True)
    return KUBECTL


@pytest.fixture(scope="module")
def ssm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AwsApi, dict[str, str]]]:
    """SSM with the parameters (SecureString), and a user holding only the documented policy."""
    policy = json.loads(POLICY.read_text())
    # moto checks the actions a policy allows, but for SSM not the resource ARNs (it matches
    # every request against "*"): the test proves the documented actions are enough.
    for statement in policy["Statement"]:
        statement["Resource"] = "*"
    # PutParameter for each parameter and the user's three actions run unchecked; every later
    # request is checked.
    with aws_api(tmp_path_factory.mktemp("ssm"), authenticate_after=len(PARAMETERS) + 3) as api:
        client = api.client("ssm")
        for name, value in PARAMETERS.items():
            client.put_parameter(Name=name, Value=value, Type="SecureString")
        keys = create_user(api, "parameter-reader", policy)
        yield api, keys


def run_script(
    ssm: tuple[AwsApi, dict[str, str]], kube: KubeApi, tmp_path: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    api, keys = ssm
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KUBECONFIG"))}
    env |= {
        "AWS_ENDPOINT_URL": api.url,  # boto3 sends every AWS call there
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": keys["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": keys["aws_secret_access_key"],
        "KUBECONFIG": str(kube.kubeconfig(tmp_path / "kubeconfig")),
    }
    return subprocess.run(
        [sys.executable, "-m", "cloud.ssm_secrets", "-f", str(AWS_VALUES), "-n", "platform",
         "--kubectl", str(KUBECTL), *args],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def assert_no_value_in(text: str) -> None:
    for value in VALUES:
        for form in (value, base64.b64encode(value.encode()).decode()):
            assert form not in text


@pytest.mark.integration
@pytest.mark.aws
def test_applies_the_secrets_idempotently_and_prints_no_value(
    ssm: tuple[AwsApi, dict[str, str]], kubectl: Path, tmp_path: Path
) -> None:
    with kube_api() as kube:
        first = run_script(ssm, kube, tmp_path)
        assert first.returncode == 0, first.stderr
        assert first.stdout.count("serverside-applied") == 4, first.stdout
        assert_no_value_in(first.stdout + first.stderr)
        stored = kube.secrets[("platform", "platform-api-keys")]["content"]["data"]
        assert (
            base64.b64decode(stored["api-keys"]).decode()
            == PARAMETERS["/platform/production/api-keys"]
        )
        # Server-side apply, as this field manager, taking over keys others set.
        content_type, params = kube.patches[0]
        assert content_type == "application/apply-patch+yaml"
        assert params["fieldManager"] == FIELD_MANAGER
        assert params["force"] == "true"
        assert kube.changes == 4

        again = run_script(ssm, kube, tmp_path)
        assert again.returncode == 0, again.stderr
        assert kube.changes == 4  # the same content again: nothing changed
        assert kube.secrets[("platform", "platform-api-keys")]["version"] == 1


@pytest.mark.integration
@pytest.mark.aws
def test_a_refused_apply_fails_and_masks_what_the_server_echoes(
    ssm: tuple[AwsApi, dict[str, str]], kubectl: Path, tmp_path: Path
) -> None:
    with kube_api() as kube:
        echoed = base64.b64encode(b"Gr4fana-Secret").decode()
        kube.refuse_with = (
            f"Secret is invalid: data[admin-password]: Invalid value: {echoed} (Gr4fana-Secret)"
        )
        refused = run_script(ssm, kube, tmp_path)
    assert refused.returncode != 0
    assert "Invalid value: [value hidden]" in refused.stderr, refused.stderr
    assert_no_value_in(refused.stdout + refused.stderr)


@pytest.mark.integration
@pytest.mark.aws
def test_a_missing_parameter_is_named_and_nothing_is_applied(
    ssm: tuple[AwsApi, dict[str, str]], tmp_path: Path
) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(
        "externalSecrets:\n  secrets:\n    - name: s\n      data:\n"
        "        - {secretKey: a, remoteKey: /platform/production/api-keys}\n"
        "        - {secretKey: b, remoteKey: /platform/production/nope}\n"
    )
    with kube_api() as kube:
        result = run_script(ssm, kube, tmp_path, "-f", str(values))
        assert kube.patches == []
    assert result.returncode == 2
    assert "parameters not found (or not readable): /platform/production/nope" in result.stderr
    assert_no_value_in(result.stdout + result.stderr)
