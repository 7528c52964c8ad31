"""Run a Job the chart renders as a local process, as close to how the kubelet would as a
machine without Kubernetes allows: its command, its environment, its ConfigMap and Secret
volumes written out as files under a scratch root (mount paths rewritten to point there), and
this virtualenv's Python standing in for the image's (the same MLflow version)."""

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

Manifest = dict[str, Any]


def _mounts(
    pod: Manifest,
    container: Manifest,
    objects: list[Manifest],
    secrets: Mapping[str, Mapping[str, str]],
    root: Path,
) -> dict[str, Path]:
    """Write each mounted volume's files under `root`; mount path -> local directory."""
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    configmaps = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ConfigMap"}
    mounted = {}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "configMap" in volume:
            data = dict(configmaps[volume["configMap"]["name"]]["data"])
            items = volume["configMap"].get("items")
        elif "secret" in volume:
            data = dict(secrets[volume["secret"]["secretName"]])
            items = volume["secret"].get("items")
        else:
            raise AssertionError(f"volume {mount['name']} is neither a ConfigMap nor a Secret")
        files = {i["path"]: data[i["key"]] for i in items} if items else data
        local = root / mount["mountPath"].lstrip("/")
        local.mkdir(parents=True, exist_ok=True)
        for path, content in files.items():
            (local / path).write_text(content)
        mounted[mount["mountPath"]] = local
    return mounted


def _relocate(text: str, mounted: Mapping[str, Path]) -> str:
    for mount_path, local in mounted.items():
        if text.startswith(mount_path + "/") or text == mount_path:
            return str(local) + text[len(mount_path) :]
    return text


def run_job(
    job: Manifest,
    objects: list[Manifest],
    secrets: Mapping[str, Mapping[str, str]],
    root: Path,
    env_overrides: Mapping[str, str],
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run the Job's only container once; `secrets` maps Secret name -> key -> value."""
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    mounted = _mounts(pod, container, objects, secrets, root)
    env = {"PATH": os.environ["PATH"], "HOME": str(root)}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = _relocate(item["value"], mounted)
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secrets[ref["name"]][ref["key"]]
    env.update(env_overrides)
    command = [
        _relocate(arg, mounted) for arg in [*container["command"], *container.get("args", [])]
    ]
    assert command[0] == "python", command
    return subprocess.run(
        [sys.executable, *command[1:]],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
