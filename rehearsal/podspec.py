"""Translate a rendered Pod spec into `docker run` arguments, as a kubelet would run it.

Pure functions: everything a container needs (environment with every `valueFrom` resolved,
volume contents, security context, memory and CPU limits, network aliases) is computed here and
handed to the Docker layer as data, so it is unit-tested without Docker.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from rehearsal.probes import Probe, parse_probe

Manifest = dict[str, Any]

# Kubernetes' default mode for files of configMap and secret volumes.
DEFAULT_FILE_MODE = 0o644


class Unrehearsable(ValueError):
    """Something in the spec a kubelet would accept but this rehearsal cannot reproduce."""


class ConfigError(ValueError):
    """Something a kubelet would refuse too (CreateContainerConfigError and friends)."""


@dataclass(frozen=True)
class VolumeFile:
    """A file of a configMap, secret or service-account volume, relative to the volume root."""

    path: str
    content: bytes
    mode: int


@dataclass(frozen=True)
class Volume:
    """A pod volume: files to write (configMap, secret, token), a directory, or a tmpfs."""

    name: str
    kind: str  # "files", "dir" (emptyDir on disk), "tmpfs" (emptyDir in memory), "claim"
    files: tuple[VolumeFile, ...] = ()
    size_bytes: int | None = None
    claim: str | None = None


@dataclass(frozen=True)
class Mount:
    volume: str
    target: str
    read_only: bool
    sub_path: str | None = None


@dataclass(frozen=True)
class Security:
    user: int | None
    group: int | None
    groups: tuple[int, ...]
    run_as_non_root: bool
    read_only_root: bool
    cap_drop: tuple[str, ...]
    cap_add: tuple[str, ...]
    no_new_privileges: bool
    seccomp: str


@dataclass(frozen=True)
class ContainerPlan:
    """One container of one pod, ready to hand to `docker run`."""

    pod: str
    name: str
    image: str
    entrypoint: str | None
    arguments: tuple[str, ...]
    env: dict[str, str]
    working_dir: str | None
    security: Security
    memory_bytes: int | None
    cpus: float | None
    ports: dict[str, int]
    mounts: tuple[Mount, ...]
    probes: dict[str, Probe] = field(default_factory=dict)
    termination_grace_seconds: int = 30


@dataclass(frozen=True)
class PodPlan:
    name: str
    hostname: str
    aliases: tuple[str, ...]
    volumes: dict[str, Volume]
    containers: tuple[ContainerPlan, ...]
    labels: dict[str, str]
    service_account: str | None
    fs_group: int | None = None
    dns_search: tuple[str, ...] = ()


@dataclass(frozen=True)
class Inputs:
    """What a kubelet reads besides the spec: the namespace's ConfigMaps, Secrets, Services."""

    namespace: str
    config_maps: Mapping[str, Mapping[str, str]]
    secrets: Mapping[str, Mapping[str, str]]
    service_env: Mapping[str, str] = field(default_factory=dict)
    host_cpus: float = 1.0


# --- quantities -------------------------------------------------------------------------------

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_DECIMAL = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def memory_bytes(quantity: str | int) -> int:
    """A Kubernetes memory quantity (`512Mi`, `1G`, `1048576`) in bytes."""
    text = str(quantity).strip()
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]i|[kMGT])?", text)
    if match is None:
        raise ConfigError(f"memory quantity {text!r} is not valid")
    number, unit = match.groups()
    scale = _BINARY.get(unit or "", 0) or _DECIMAL.get(unit or "", 1)
    return int(float(number) * scale)


def cpu_cores(quantity: str | int | float) -> float:
    """A Kubernetes CPU quantity (`250m`, `2`, `0.5`) in cores."""
    text = str(quantity).strip()
    if text.endswith("m"):
        return int(text[:-1]) / 1000
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"cpu quantity {text!r} is not valid") from None


# --- environment ------------------------------------------------------------------------------

_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: defined names are replaced, `$$` escapes, others stay."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env[name] if name in env else match.group(0)

    return _REFERENCE.sub(replace, text)


def _lookup(
    source: Mapping[str, Mapping[str, str]], kind: str, name: str, key: str, optional: bool
) -> str | None:
    if name not in source:
        if optional:
            return None
        raise ConfigError(f'{kind} "{name}" not found')
    if key not in source[name]:
        if optional:
            return None
        raise ConfigError(f'couldn\'t find key {key} in {kind} "{name}"')
    return source[name][key]


def resolve_env(container: Manifest, pod_name: str, inputs: Inputs) -> dict[str, str]:
    """The container's environment as the kubelet builds it, every `valueFrom` resolved."""
    env: dict[str, str] = dict(inputs.service_env)
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            ref, store, kind = source["configMapRef"], inputs.config_maps, "configmap"
        elif "secretRef" in source:
            ref, store, kind = source["secretRef"], inputs.secrets, "secret"
        else:
            raise Unrehearsable(f"envFrom {source} is not supported")
        if ref["name"] not in store:
            if ref.get("optional"):
                continue
            raise ConfigError(f'{kind} "{ref["name"]}" not found')
        for key, data in store[ref["name"]].items():
            env[prefix + key] = data
    for entry in container.get("env") or []:
        name = entry["name"]
        if "valueFrom" not in entry:
            env[name] = expand(str(entry.get("value", "")), env)
            continue
        source = entry["valueFrom"]
        value: str | None = None
        if "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            value = _lookup(
                inputs.config_maps, "configmap", ref["name"], ref["key"], ref.get("optional", False)
            )
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            value = _lookup(
                inputs.secrets, "secret", ref["name"], ref["key"], ref.get("optional", False)
            )
        elif "fieldRef" in source:
            field_path = source["fieldRef"]["fieldPath"]
            fields = {"metadata.name": pod_name, "metadata.namespace": inputs.namespace}
            if field_path not in fields:
                raise Unrehearsable(f"env {name}: fieldRef {field_path} is not supported")
            value = fields[field_path]
        else:
            raise Unrehearsable(f"env {name}: valueFrom {sorted(source)} is not supported")
        if value is not None:
            env[name] = value
    return env


# --- volumes ----------------------------------------------------------------------------------


def _item_files(
    data: Mapping[str, str], items: list[Manifest] | None, default_mode: int, what: str
) -> tuple[VolumeFile, ...]:
    if not items:
        return tuple(VolumeFile(k, v.encode(), default_mode) for k, v in sorted(data.items()))
    files = []
    for item in items:
        if item["key"] not in data:
            raise ConfigError(f"{what}: key {item['key']} not found")
        files.append(
            VolumeFile(item["path"], data[item["key"]].encode(), item.get("mode", default_mode))
        )
    return tuple(files)


def resolve_volumes(pod_spec: Manifest, inputs: Inputs) -> dict[str, Volume]:
    """Every volume of the pod, with the contents of configMap and secret volumes."""
    volumes: dict[str, Volume] = {}
    for spec in pod_spec.get("volumes") or []:
        name = spec["name"]
        if "configMap" in spec:
            ref = spec["configMap"]
            data = inputs.config_maps.get(ref["name"])
            if data is None:
                if not ref.get("optional"):
                    raise ConfigError(f'configmap "{ref["name"]}" not found')
                data = {}
            files = _item_files(
                data,
                ref.get("items"),
                ref.get("defaultMode", DEFAULT_FILE_MODE),
                f"configmap {ref['name']}",
            )
            volumes[name] = Volume(name, "files", files)
        elif "secret" in spec:
            ref = spec["secret"]
            data = inputs.secrets.get(ref["secretName"])
            if data is None:
                if not ref.get("optional"):
                    raise ConfigError(f'secret "{ref["secretName"]}" not found')
                data = {}
            files = _item_files(
                data,
                ref.get("items"),
                ref.get("defaultMode", DEFAULT_FILE_MODE),
                f"secret {ref['secretName']}",
            )
            volumes[name] = Volume(name, "files", files)
        elif "emptyDir" in spec:
            empty = spec["emptyDir"] or {}
            size = memory_bytes(empty["sizeLimit"]) if "sizeLimit" in empty else None
            kind = "tmpfs" if empty.get("medium") == "Memory" else "dir"
            volumes[name] = Volume(name, kind, size_bytes=size)
        elif "persistentVolumeClaim" in spec:
            volumes[name] = Volume(name, "claim", claim=spec["persistentVolumeClaim"]["claimName"])
        else:
            kinds = sorted(k for k in spec if k != "name")
            raise Unrehearsable(f"volume {name}: {kinds} is not supported")
    return volumes


def _automounts_token(pod_spec: Manifest, service_account_automount: bool) -> bool:
    setting = pod_spec.get("automountServiceAccountToken")
    return service_account_automount if setting is None else bool(setting)


# --- security ---------------------------------------------------------------------------------


def resolve_security(
    pod_spec: Manifest, container: Manifest, image_user: Callable[[str], str]
) -> Security:
    """Pod and container securityContext merged the way the kubelet merges them."""
    pod = pod_spec.get("securityContext") or {}
    own = container.get("securityContext") or {}

    def pick(key: str) -> Any:
        return own[key] if key in own else pod.get(key)

    user = pick("runAsUser")
    group = pick("runAsGroup")
    non_root = bool(pick("runAsNonRoot"))
    if non_root:
        # The kubelet refuses to start a runAsNonRoot container that would run as root, and one
        # whose image names its user instead of giving a number it could check.
        if user is None:
            configured = image_user(container["image"]).split(":")[0]
            if not configured or configured in ("0", "root"):
                raise ConfigError("container has runAsNonRoot and image will run as root")
            if not configured.isdigit():
                raise ConfigError(
                    f"container has runAsNonRoot and image has non-numeric user ({configured}),"
                    " cannot verify user is non-root"
                )
        elif int(user) == 0:
            raise ConfigError("container's runAsUser breaks non-root policy")
    groups = [int(g) for g in pod.get("supplementalGroups") or []]
    if pod.get("fsGroup") is not None:
        groups.insert(0, int(pod["fsGroup"]))
    capabilities = own.get("capabilities") or {}
    seccomp_profile = pick("seccompProfile") or {}
    seccomp = seccomp_profile.get("type", "RuntimeDefault")
    if seccomp == "Localhost":
        raise Unrehearsable("seccompProfile Localhost is not supported")
    if own.get("privileged"):
        raise Unrehearsable("privileged containers are not rehearsed")
    return Security(
        user=int(user) if user is not None else None,
        group=int(group) if group is not None else None,
        groups=tuple(dict.fromkeys(groups)),
        run_as_non_root=non_root,
        read_only_root=bool(own.get("readOnlyRootFilesystem")),
        cap_drop=tuple(capabilities.get("drop") or ()),
        cap_add=tuple(capabilities.get("add") or ()),
        no_new_privileges=own.get("allowPrivilegeEscalation") is False,
        seccomp=seccomp,
    )


# --- the pod ----------------------------------------------------------------------------------


def _ports(container: Manifest) -> dict[str, int]:
    ports = {}
    for port in container.get("ports") or []:
        number = int(port["containerPort"])
        ports[port.get("name") or str(number)] = number
    return ports


def plan_pod(
    pod_name: str,
    pod_spec: Manifest,
    labels: Mapping[str, str],
    inputs: Inputs,
    aliases: tuple[str, ...],
    image_user: Callable[[str], str],
    service_account_automount: bool = True,
    search: tuple[str, ...] = (),
) -> PodPlan:
    """Everything needed to run one pod's containers; raises ConfigError or Unrehearsable."""
    if pod_spec.get("initContainers"):
        raise Unrehearsable("initContainers are not supported")
    volumes = resolve_volumes(pod_spec, inputs)
    if _automounts_token(pod_spec, service_account_automount):
        # Nothing here answers as the Kubernetes API, so a pod that needs one cannot run as is.
        raise Unrehearsable(
            "the pod mounts a service-account token, and no Kubernetes API is rehearsed"
        )
    containers = []
    grace = int(pod_spec.get("terminationGracePeriodSeconds", 30))
    for container in pod_spec["containers"]:
        env = resolve_env(container, pod_name, inputs)
        command = [expand(str(c), env) for c in container.get("command") or []]
        args = [expand(str(a), env) for a in container.get("args") or []]
        mounts: list[Mount] = []
        for mount in container.get("volumeMounts") or []:
            if mount["name"] not in volumes:
                raise ConfigError(f"volumeMount {mount['name']} names no volume")
            volume = volumes[mount["name"]]
            # configMap and secret volumes are always read-only in a pod.
            read_only = bool(mount.get("readOnly")) or volume.kind == "files"
            sub_path = mount.get("subPath")
            if sub_path is not None and PurePosixPath(sub_path).is_absolute():
                raise ConfigError(f"subPath {sub_path} must be relative")
            mounts.append(Mount(mount["name"], mount["mountPath"], read_only, sub_path))
        ports = _ports(container)
        limits = (container.get("resources") or {}).get("limits") or {}
        memory = memory_bytes(limits["memory"]) if "memory" in limits else None
        cpus = min(cpu_cores(limits["cpu"]), inputs.host_cpus) if "cpu" in limits else None
        probes = {}
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            if kind in container:
                probes[kind.removesuffix("Probe")] = parse_probe(container[kind], ports)
        containers.append(
            ContainerPlan(
                pod=pod_name,
                name=container["name"],
                image=container["image"],
                entrypoint=command[0] if command else None,
                arguments=tuple(command[1:] + args) if command else tuple(args),
                env=env,
                working_dir=container.get("workingDir"),
                security=resolve_security(pod_spec, container, image_user),
                memory_bytes=memory,
                cpus=cpus,
                ports=ports,
                mounts=tuple(mounts),
                probes=probes,
                termination_grace_seconds=grace,
            )
        )
    if len(containers) != 1:
        raise Unrehearsable("pods with more than one container are not supported")
    return PodPlan(
        name=pod_name,
        hostname=pod_name,
        aliases=aliases,
        volumes=volumes,
        containers=tuple(containers),
        labels=dict(labels),
        service_account=pod_spec.get("serviceAccountName"),
        fs_group=(pod_spec.get("securityContext") or {}).get("fsGroup"),
        dns_search=search,
    )


def docker_run_args(
    plan: PodPlan,
    container: ContainerPlan,
    network: str,
    container_name: str,
    mount_source: Callable[[Volume], str],
    run_label: str,
) -> list[str]:
    """`docker run` arguments (after `run`) for one container of a planned pod."""
    sec = container.security
    args = ["--detach", "--name", container_name, "--hostname", plan.hostname]
    args += ["--network", network, "--label", run_label]
    for alias in plan.aliases:
        args += ["--network-alias", alias]
    for domain in plan.dns_search:
        args += ["--dns-search", domain]
    if plan.dns_search:
        args += ["--dns-option", "ndots:5"]  # as in a pod's resolv.conf
    if sec.user is not None:
        args += ["--user", f"{sec.user}:{sec.group}" if sec.group is not None else str(sec.user)]
    for group in sec.groups:
        args += ["--group-add", str(group)]
    if sec.read_only_root:
        args.append("--read-only")
    for cap in sec.cap_drop:
        args += ["--cap-drop", cap]
    for cap in sec.cap_add:
        args += ["--cap-add", cap]
    if sec.no_new_privileges:
        args += ["--security-opt", "no-new-privileges"]
    if sec.seccomp == "Unconfined":
        args += ["--security-opt", "seccomp=unconfined"]
    if container.memory_bytes is not None:
        # No swap, as on a Kubernetes node: the limit is the limit.
        args += ["--memory", str(container.memory_bytes)]
        args += ["--memory-swap", str(container.memory_bytes)]
    if container.cpus is not None:
        args += ["--cpus", f"{container.cpus:g}"]
    for name, value in sorted(container.env.items()):
        args += ["--env", f"{name}={value}"]
    if container.working_dir:
        args += ["--workdir", container.working_dir]
    for mount in container.mounts:
        volume = plan.volumes[mount.volume]
        if volume.kind == "tmpfs" and mount.sub_path is None:
            spec = f"type=tmpfs,destination={mount.target},tmpfs-mode=1777"
            if volume.size_bytes is not None:
                spec += f",tmpfs-size={volume.size_bytes}"
        else:
            source = mount_source(volume)
            if mount.sub_path:
                source = str(PurePosixPath(source) / mount.sub_path)
            spec = f"type=bind,source={source},destination={mount.target}"
            if mount.read_only:
                spec += ",readonly"
        args += ["--mount", spec]
    if container.entrypoint is not None:
        args += ["--entrypoint", container.entrypoint]
    args.append(container.image)
    args += list(container.arguments)
    return args
