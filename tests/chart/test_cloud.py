"""The chart on a cloud: MLflow's artifacts in S3 behind its proxy, the service account a cloud
role binds to, and the External Secrets Operator objects that create the Secrets it refers to."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chart.conftest import Manifest, container, find, helm, render, template_args

pytestmark = pytest.mark.chart

AWS = ["ci/aws-values.yaml"]
ALL = ["ci/all-features-values.yaml"]
ROLE = "arn:aws:iam::111122223333:role/platform-mlflow-artifacts"


def env_of(c: Manifest) -> dict[str, Manifest]:
    return {e["name"]: e for e in c.get("env", [])}


def referenced_secrets(objs: list[Manifest]) -> set[str]:
    """Every Secret a pod of the release reads, by env or by volume."""
    names = set()
    for obj in objs:
        spec = (obj.get("spec") or {}).get("template", {}).get("spec")
        if spec is None:
            continue
        for c in spec["containers"]:
            names |= {
                e["valueFrom"]["secretKeyRef"]["name"]
                for e in c.get("env", [])
                if "secretKeyRef" in e.get("valueFrom", {})
            }
        names |= {v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v}
    return names


def test_artifacts_in_s3_through_the_pods_role() -> None:
    objs = render(AWS)
    deployment = find(objs, "Deployment", "platform-mlflow")
    mlflow = container(deployment, "mlflow")
    assert "--serve-artifacts" in mlflow["args"]
    assert "--artifacts-destination=s3://platform-mlflow-artifacts/production" in mlflow["args"]
    env = env_of(mlflow)
    assert env["AWS_DEFAULT_REGION"]["value"] == "eu-west-1"
    # No keys: boto3 takes the role IRSA injects for the service account.
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_S3_ENDPOINT_URL"} & set(env)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "platform-mlflow"
    assert pod["automountServiceAccountToken"] is False
    account = find(objs, "ServiceAccount", "platform-mlflow")
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": ROLE}
    assert account["automountServiceAccountToken"] is False


def test_s3_compatible_store_with_keys_from_a_secret() -> None:
    mlflow = container(find(render(ALL), "Deployment", "platform-mlflow"), "mlflow")
    env = env_of(mlflow)
    assert env["MLFLOW_S3_ENDPOINT_URL"]["value"] == "http://minio.storage:9000"
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert env[key]["valueFrom"]["secretKeyRef"] == {"name": "platform-mlflow-s3", "key": key}


def test_an_empty_prefix_means_the_bucket_root() -> None:
    sets = [
        "mlflow.artifacts.type=s3",
        "mlflow.artifacts.s3.bucket=models",
        "mlflow.artifacts.s3.prefix=",
    ]
    args = container(find(render(sets=sets), "Deployment", "platform-mlflow"), "mlflow")["args"]
    assert "--artifacts-destination=s3://models" in args


@pytest.mark.parametrize("values", [(), tuple(AWS), tuple(ALL)])
def test_only_mlflow_sees_the_artifact_store(values: tuple[str, ...]) -> None:
    """The API and every other pod talk to MLflow, never to S3: no AWS setting reaches them."""
    for obj in render(values):
        spec = (obj.get("spec") or {}).get("template", {}).get("spec")
        if spec is None or obj["metadata"]["name"] == "platform-mlflow":
            continue
        for c in spec["containers"]:
            names = set(env_of(c))
            assert not {n for n in names if n.startswith(("AWS_", "MLFLOW_S3"))}, obj["metadata"]
        account = spec.get("serviceAccountName")
        if account:
            annotations = find(render(values), "ServiceAccount", account)["metadata"]
            assert "annotations" not in annotations, account


def test_an_existing_service_account_instead_of_the_charts() -> None:
    sets = ["mlflow.serviceAccount.create=false", "mlflow.serviceAccount.name=mlflow-irsa"]
    objs = render(sets=sets)
    pod = find(objs, "Deployment", "platform-mlflow")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "mlflow-irsa"
    assert not [
        o for o in objs if o["kind"] == "ServiceAccount" and "mlflow" in o["metadata"]["name"]
    ]


def test_pod_labels_for_azure_workload_identity(tmp_path: Path) -> None:
    values = tmp_path / "azure.yaml"  # a file: --set would make "true" a boolean
    values.write_text('mlflow:\n  podLabels:\n    azure.workload.identity/use: "true"\n')
    objs = render([str(values)])
    labels = find(objs, "Deployment", "platform-mlflow")["spec"]["template"]["metadata"]["labels"]
    assert labels["azure.workload.identity/use"] == "true"


def test_no_external_secrets_unless_asked() -> None:
    assert not [o for o in render() if o["apiVersion"].startswith("external-secrets.io/")]


def test_external_secrets_create_every_secret_the_release_reads() -> None:
    objs = render(AWS)
    external = [o for o in objs if o["kind"] == "ExternalSecret"]
    targets = {o["spec"]["target"]["name"] for o in external}
    assert referenced_secrets(objs) <= targets, referenced_secrets(objs) - targets
    store = find(objs, "SecretStore", "platform-aws")
    assert store["spec"]["provider"]["aws"] == {
        "service": "ParameterStore",
        "region": "eu-west-1",
        "auth": {"jwt": {"serviceAccountRef": {"name": "platform-parameter-reader"}}},
    }
    reader = find(objs, "ServiceAccount", "platform-parameter-reader")
    assert "eks.amazonaws.com/role-arn" in reader["metadata"]["annotations"]
    for obj in external:
        assert obj["spec"]["secretStoreRef"] == {"kind": "SecretStore", "name": "platform-aws"}
        assert obj["spec"]["target"]["creationPolicy"] == "Owner"
    admin = find(objs, "ExternalSecret", "platform-mlflow-admin")
    assert admin["spec"]["data"][1] == {
        "secretKey": "password",
        "remoteRef": {"key": "/platform/production/mlflow-admin", "property": "password"},
    }


def test_external_secrets_through_an_existing_cluster_store() -> None:
    sets = [
        "externalSecrets.secretStore.create=false",
        "externalSecrets.secretStoreRef.name=aws-parameters",
    ]
    objs = render(AWS, sets=sets)
    assert not [o for o in objs if o["kind"] == "SecretStore"]
    for obj in (o for o in objs if o["kind"] == "ExternalSecret"):
        assert obj["spec"]["secretStoreRef"] == {
            "kind": "ClusterSecretStore",
            "name": "aws-parameters",
        }


def test_an_existing_store_must_be_named() -> None:
    args = template_args(
        values=[str(v) for v in AWS], sets=["externalSecrets.secretStore.create=false"]
    )
    result = helm(*args)
    assert result.returncode != 0
    assert "externalSecrets.secretStoreRef.name is required" in result.stderr
