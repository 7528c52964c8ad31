"""Pod spec -> docker run: each rule of the kubelet the rehearsal reproduces, without Docker."""

from __future__ import annotations

from typing import Any

import pytest

from rehearsal.podspec import (
    ConfigError,
    Inputs,
    PodPlan,
    Unrehearsable,
    Volume,
    cpu_cores,
    docker_run_args,
    expand,
    memory_bytes,
    plan_pod,
    resolve_env,
)

INPUTS = Inputs(
    namespace="platform",
    config_maps={"api": {"MODEL_URI": "models:/m/1", "PORT": "8000"}},
    secrets={"keys": {"api-keys": "k1,k2"}, "admin": {"username": "admin", "password": "pw"}},
    service_env={"KUBERNETES_SERVICE_HOST": "kubernetes.default.svc"},
    host_cpus=2.0,
)


def pod(**container: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": "c", "image": "img:1", **container}
    return {"containers": [spec]}


def plan(spec: dict[str, Any], inputs: Inputs = INPUTS, user: str = "10001") -> PodPlan:
    # As with a ServiceAccount that sets automountServiceAccountToken: false.
    return plan_pod(
        "p-0",
        spec,
        {"app": "x"},
        inputs,
        ("svc",),
        lambda _: user,
        False,
        ("ns.svc.cluster.local",),
    )


def run_args(spec: dict[str, Any], inputs: Inputs = INPUTS) -> list[str]:
    planned = plan(spec, inputs)
    return docker_run_args(
        planned, planned.containers[0], "net", "ctr", lambda v: f"/host/{v.name}", "run=1"
    )


def pairs(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args) if a == flag]


# --- quantities and expansion -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        ("1Gi", 2**30),
        ("512Mi", 512 * 2**20),
        ("1G", 10**9),
        ("1048576", 1048576),
        ("8Gi", 8 * 2**30),
    ],
)
def test_memory_quantities(quantity: str, expected: int) -> None:
    assert memory_bytes(quantity) == expected


def test_cpu_quantities() -> None:
    assert cpu_cores("250m") == 0.25
    assert cpu_cores("2") == 2.0
    with pytest.raises(ConfigError):
        cpu_cores("two")


def test_dependent_variables_expand_like_kubernetes() -> None:
    env = {"A": "x", "B": "y"}
    assert expand("--uri=$(A)/$(B)", env) == "--uri=x/y"
    assert expand("$(MISSING) stays", env) == "$(MISSING) stays"
    assert expand("$$(A) is escaped", env) == "$(A) is escaped"


# --- environment ------------------------------------------------------------------------------


def test_env_from_configmap_then_env_overrides_and_secret_refs_resolve() -> None:
    container = {
        "envFrom": [{"configMapRef": {"name": "api"}}],
        "env": [
            {"name": "PORT", "value": "9000"},
            {"name": "USER", "valueFrom": {"secretKeyRef": {"name": "admin", "key": "username"}}},
            {"name": "URL", "value": "http://h:$(PORT)"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
    }
    env = resolve_env(container, "p-0", INPUTS)
    assert env["MODEL_URI"] == "models:/m/1"
    assert env["PORT"] == "9000"
    assert env["USER"] == "admin"
    assert env["URL"] == "http://h:9000"
    assert env["POD"] == "p-0"
    assert env["KUBERNETES_SERVICE_HOST"] == "kubernetes.default.svc"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}],
            '"nope" not found',
        ),
        (
            [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "admin", "key": "k"}}}],
            "couldn't find key k",
        ),
        (
            [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}],
            "configmap",
        ),
    ],
)
def test_a_missing_secret_or_key_fails_like_create_container_config_error(
    env: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_env({"env": env}, "p-0", INPUTS)


def test_optional_references_may_be_missing() -> None:
    env = resolve_env(
        {
            "env": [
                {
                    "name": "X",
                    "valueFrom": {"secretKeyRef": {"name": "n", "key": "k", "optional": True}},
                }
            ]
        },
        "p-0",
        INPUTS,
    )
    assert "X" not in env


def test_command_and_args_expand_variables() -> None:
    spec = pod(
        command=["mlflow", "server"],
        args=["--backend-store-uri=$(DB)"],
        env=[{"name": "DB", "valueFrom": {"secretKeyRef": {"name": "admin", "key": "password"}}}],
    )
    args = run_args(spec)
    assert pairs(args, "--entrypoint") == ["mlflow"]
    assert args[-3:] == ["img:1", "server", "--backend-store-uri=pw"]


def test_args_alone_keep_the_image_entrypoint() -> None:
    args = run_args(pod(args=["--config.file=/etc/p.yml"]))
    assert "--entrypoint" not in args
    assert args[-2:] == ["img:1", "--config.file=/etc/p.yml"]


# --- volumes ----------------------------------------------------------------------------------


def test_secret_volume_items_and_configmap_volume_files() -> None:
    spec = pod(
        volumeMounts=[
            {"name": "keys", "mountPath": "/etc/keys", "readOnly": True},
            {"name": "conf", "mountPath": "/etc/conf"},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "mem", "mountPath": "/cache"},
            {"name": "data", "mountPath": "/data"},
        ]
    )
    spec["volumes"] = [
        {
            "name": "keys",
            "secret": {"secretName": "keys", "items": [{"key": "api-keys", "path": "f"}]},
        },
        {"name": "conf", "configMap": {"name": "api"}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
        {"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
        {"name": "data", "persistentVolumeClaim": {"claimName": "pvc"}},
    ]
    planned = plan(spec)
    keys = planned.volumes["keys"]
    assert [(f.path, f.content, f.mode) for f in keys.files] == [("f", b"k1,k2", 0o644)]
    assert {f.path for f in planned.volumes["conf"].files} == {"MODEL_URI", "PORT"}
    assert planned.volumes["tmp"] == Volume("tmp", "dir", size_bytes=256 * 2**20)
    assert planned.volumes["mem"].kind == "tmpfs"
    assert planned.volumes["data"].claim == "pvc"
    mounts = pairs(run_args(spec), "--mount")
    assert "type=bind,source=/host/keys,destination=/etc/keys,readonly" in mounts
    # configMap and secret volumes are read-only even without readOnly: true
    assert "type=bind,source=/host/conf,destination=/etc/conf,readonly" in mounts
    assert "type=bind,source=/host/tmp,destination=/tmp" in mounts
    assert f"type=tmpfs,destination=/cache,tmpfs-mode=1777,tmpfs-size={64 * 2**20}" in mounts
    assert "type=bind,source=/host/data,destination=/data" in mounts


def test_sub_path_mounts_one_file() -> None:
    spec = pod(volumeMounts=[{"name": "conf", "mountPath": "/etc/x.yaml", "subPath": "PORT"}])
    spec["volumes"] = [{"name": "conf", "configMap": {"name": "api"}}]
    assert "type=bind,source=/host/conf/PORT,destination=/etc/x.yaml,readonly" in pairs(
        run_args(spec), "--mount"
    )


def test_a_missing_volume_secret_fails() -> None:
    spec = pod()
    spec["volumes"] = [{"name": "s", "secret": {"secretName": "absent"}}]
    with pytest.raises(ConfigError, match='secret "absent" not found'):
        plan(spec)


def test_unsupported_volumes_are_named() -> None:
    spec = pod()
    spec["volumes"] = [{"name": "h", "hostPath": {"path": "/"}}]
    with pytest.raises(Unrehearsable, match="hostPath"):
        plan(spec)


def test_a_pod_that_mounts_a_token_cannot_be_rehearsed() -> None:
    """Nothing answers as the Kubernetes API here; such a pod is reported, not run half-way."""
    spec = {**pod(), "automountServiceAccountToken": True}
    with pytest.raises(Unrehearsable, match="service-account token"):
        plan(spec)


# --- security and resources ---------------------------------------------------------------------

RESTRICTED = {
    "securityContext": {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    },
    "resources": {"limits": {"cpu": "4", "memory": "1Gi"}, "requests": {"cpu": "250m"}},
}


def test_restricted_security_context_and_limits_become_docker_flags() -> None:
    spec = {
        **pod(**RESTRICTED),
        "securityContext": {
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "fsGroup": 10001,
            "runAsNonRoot": True,
        },
    }
    args = run_args(spec)
    assert pairs(args, "--user") == ["10001:10001"]
    assert pairs(args, "--group-add") == ["10001"]
    assert "--read-only" in args
    assert pairs(args, "--cap-drop") == ["ALL"]
    assert pairs(args, "--security-opt") == ["no-new-privileges"]
    assert pairs(args, "--memory") == [str(2**30)]
    assert pairs(args, "--memory-swap") == [str(2**30)]
    assert pairs(args, "--cpus") == ["2"]  # capped at the host's cores
    assert pairs(args, "--network-alias") == ["svc"]
    assert pairs(args, "--dns-search") == ["ns.svc.cluster.local"]
    assert pairs(args, "--dns-option") == ["ndots:5"]
    assert pairs(args, "--hostname") == ["p-0"]


def test_run_as_non_root_is_enforced_like_the_kubelet() -> None:
    spec = pod(securityContext={"runAsNonRoot": True})
    with pytest.raises(ConfigError, match="will run as root"):
        plan(spec, user="")
    with pytest.raises(ConfigError, match="non-numeric user"):
        plan(spec, user="app")
    assert plan(spec, user="10001").containers[0].security.user is None
    with pytest.raises(ConfigError, match="non-root"):
        plan(pod(securityContext={"runAsNonRoot": True, "runAsUser": 0}))


def test_container_security_context_overrides_the_pods() -> None:
    spec = {**pod(securityContext={"runAsUser": 5}), "securityContext": {"runAsUser": 7}}
    assert plan(spec).containers[0].security.user == 5


def test_probes_resolve_named_ports() -> None:
    spec = pod(
        ports=[{"name": "http", "containerPort": 8000}],
        readinessProbe={"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 5},
        startupProbe={"httpGet": {"path": "/health", "port": 8000}},
    )
    probes = plan(spec).containers[0].probes
    assert probes["readiness"].port == 8000
    assert probes["readiness"].period == 5
    assert probes["readiness"].timeout == 1  # Kubernetes' default
    assert probes["startup"].failure_threshold == 3
    bad = pod(readinessProbe={"httpGet": {"path": "/", "port": "metrics"}})
    with pytest.raises(ValueError, match="names no container port"):
        plan(bad)
