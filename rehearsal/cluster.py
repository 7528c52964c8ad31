"""A namespace's worth of pods on one Docker network: apply a rendered release the way the
Deployment controller and the kubelet would, keep the probes running, and tear it all down.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rehearsal import docker
from rehearsal.manifests import Manifest, Release, Workload
from rehearsal.podspec import (
    ConfigError,
    Inputs,
    PodPlan,
    Unrehearsable,
    Volume,
    docker_run_args,
    plan_pod,
)
from rehearsal.port_forward import PortForward
from rehearsal.probes import Prober
from rehearsal.report import Report

CLUSTER_DOMAIN = "cluster.local"


@dataclass
class RunningPod:
    """A pod's container, its IP on the network and the kubelet-like prober watching it."""

    workload: str
    template: str
    plan: PodPlan
    container: str
    ip: str
    prober: Prober
    started: float = field(default_factory=time.monotonic)


def service_name(name: str, namespace: str) -> str:
    """A Service's DNS name; pods reach the shorter forms through their DNS search path."""
    return f"{name}.{namespace}.svc.{CLUSTER_DOMAIN}"


def dns_search(namespace: str) -> tuple[str, ...]:
    """A pod's DNS search path (ClusterFirst), as the kubelet writes it into resolv.conf."""
    return (f"{namespace}.svc.{CLUSTER_DOMAIN}", f"svc.{CLUSTER_DOMAIN}", CLUSTER_DOMAIN)


def selects(service: Manifest, labels: Mapping[str, str]) -> bool:
    selector = service["spec"].get("selector") or {}
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def service_env(services: Iterable[Manifest], namespace: str) -> dict[str, str]:
    """The variables the kubelet injects for each Service of the namespace (enableServiceLinks),
    with the Service's DNS name where Kubernetes would put its cluster IP."""
    env: dict[str, str] = {}
    for service in services:
        ports = service["spec"].get("ports") or []
        if not ports:
            continue
        prefix = re.sub(r"[^A-Z0-9]", "_", service["metadata"]["name"].upper())
        host = f"{service['metadata']['name']}.{namespace}.svc"
        first = ports[0]
        env[f"{prefix}_SERVICE_HOST"] = host
        env[f"{prefix}_SERVICE_PORT"] = str(first["port"])
        env[f"{prefix}_PORT"] = f"{first.get('protocol', 'TCP').lower()}://{host}:{first['port']}"
        for port in ports:
            proto = port.get("protocol", "TCP")
            if port.get("name"):
                env[f"{prefix}_SERVICE_PORT_{port['name'].upper().replace('-', '_')}"] = str(
                    port["port"]
                )
            base = f"{prefix}_PORT_{port['port']}_{proto}"
            env[base] = f"{proto.lower()}://{host}:{port['port']}"
            env[f"{base}_PROTO"] = proto.lower()
            env[f"{base}_PORT"] = str(port["port"])
            env[f"{base}_ADDR"] = host
    return env


class Cluster:
    """The rehearsal's stand-in for one namespace of a cluster."""

    def __init__(
        self,
        run_id: str,
        namespace: str,
        workdir: Path,
        report: Report,
        secrets: Mapping[str, Mapping[str, str]],
    ) -> None:
        self.run_id = run_id
        self.namespace = namespace
        self.workdir = workdir
        self.report = report
        self.secrets = {k: dict(v) for k, v in secrets.items()}
        self.network = f"rehearsal-{run_id}"
        self.label = f"platform.rehearsal={run_id}"
        self.pods: dict[str, RunningPod] = {}
        self.finished: list[RunningPod] = []  # stopped pods, for the probe summary
        self.templates: dict[str, str] = {}  # workload -> template key currently running
        self._host_cpus = float(os.cpu_count() or 1)
        self._forwards: list[PortForward] = []
        self._image_users: dict[str, str] = {}
        docker.docker("network", "create", "--label", self.label, self.network)

    # --- plumbing ---------------------------------------------------------------------------

    def _image_user(self, image: str) -> str:
        if image not in self._image_users:
            self._image_users[image] = docker.image_user(image)
        return self._image_users[image]

    def _volume_source(self, pod: str, volume: Volume) -> str:
        """Where a volume lives on the host: a claim is shared by pods and survives them."""
        if volume.kind == "claim":
            assert volume.claim is not None
            path = self.workdir / "claims" / volume.claim
            if not path.exists():
                path.mkdir(parents=True)
                path.chmod(0o777)  # what kind's local-path provisioner hands out
            return str(path)
        path = self.workdir / "pods" / pod / volume.name
        return str(path)

    def _materialise(self, plan: PodPlan, fs_group: int | None) -> None:
        for volume in plan.volumes.values():
            if volume.kind in ("tmpfs", "claim"):
                continue
            root = Path(self._volume_source(plan.name, volume))
            if root.exists():
                shutil.rmtree(root)
            root.mkdir(parents=True)
            if volume.kind == "dir":
                root.chmod(0o777)  # an emptyDir is world-writable
                continue
            root.chmod(0o755)
            for item in volume.files:
                target = root / item.path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(item.content)
                # The kubelet gives these files the fsGroup, so mode 0440 is still readable.
                if fs_group is not None and os.geteuid() == 0:
                    os.chown(target, 0, fs_group)
                target.chmod(item.mode)

    # --- applying a release -----------------------------------------------------------------

    def apply(
        self, release: Release, runnable: Callable[[Workload], str | None], subject: str
    ) -> bool:
        """Bring the running pods in line with a rendered release; report each workload.

        `runnable` returns None for a workload to run, or the reason it is skipped. A workload
        whose pod template is unchanged keeps its pods, as a Deployment would.
        """
        ok = True
        wanted = {w.name: w for w in release.workloads()}
        for name in [n for n in self.templates if n not in wanted]:
            self._stop_workload(name)
        started: list[tuple[Workload, list[RunningPod]]] = []
        for workload in wanted.values():
            reason = runnable(workload)
            if reason is not None:
                continue
            key = workload.template_key()
            if self.templates.get(workload.name) == key:
                continue
            strategy = self._strategy(release, workload.name)
            if strategy == "Recreate":
                self._stop_workload(workload.name)
            try:
                pods = self._start_pods(release, workload, key)
            except (ConfigError, Unrehearsable, docker.DockerError) as exc:
                self.report.failed(f"{subject} {workload.name}", str(exc))
                ok = False
                continue
            started.append((workload, pods))
        for workload, pods in started:
            if self._wait_ready(workload, pods, subject):
                # Rolling update: the old pods stop once the new ones are ready.
                for name in [
                    p for p, pod in self.pods.items()
                    if pod.workload == workload.name and pod.template != workload.template_key()
                ]:  # fmt: skip
                    self._stop_pod(name)
                self.templates[workload.name] = workload.template_key()
            else:
                ok = False
        return ok

    @staticmethod
    def _strategy(release: Release, name: str) -> str:
        for d in release.of_kind("Deployment"):
            if d["metadata"]["name"] == name:
                return str((d["spec"].get("strategy") or {}).get("type", "RollingUpdate"))
        return "RollingUpdate"

    @staticmethod
    def _account_automounts(release: Release, service_account: str | None) -> bool:
        """A ServiceAccount mounts its token unless it says otherwise."""
        for sa in release.of_kind("ServiceAccount"):
            if sa["metadata"]["name"] == (service_account or "default"):
                return sa.get("automountServiceAccountToken") is not False
        return True

    def _inputs(self, release: Release) -> Inputs:
        return Inputs(
            namespace=self.namespace,
            config_maps=release.config_maps(),
            secrets=self.secrets,
            service_env=service_env(release.of_kind("Service"), self.namespace),
            host_cpus=self._host_cpus,
        )

    def plan(self, release: Release, workload: Workload, pod_name: str) -> PodPlan:
        """The pod as the kubelet would run it (ConfigError/Unrehearsable when it cannot)."""
        aliases = [
            service_name(service["metadata"]["name"], self.namespace)
            for service in release.of_kind("Service")
            if selects(service, workload.labels)
        ]
        account = workload.pod_spec.get("serviceAccountName")
        return plan_pod(
            pod_name,
            workload.pod_spec,
            workload.labels,
            self._inputs(release),
            tuple(aliases),
            self._image_user,
            self._account_automounts(release, account),
            dns_search(self.namespace),
        )

    def _run(self, plan: PodPlan) -> tuple[str, str]:
        container = plan.containers[0]
        self._materialise(plan, plan.fs_group)
        name = f"{self.network}-{plan.name}"
        docker.remove(name)
        args = docker_run_args(
            plan,
            container,
            self.network,
            name,
            lambda volume: self._volume_source(plan.name, volume),
            self.label,
        )
        docker.run(args)
        return name, docker.container_ip(name, self.network)

    def _start_pods(self, release: Release, workload: Workload, key: str) -> list[RunningPod]:
        digest = hashlib.sha256(key.encode()).hexdigest()[:5]
        pods = []
        for i in range(workload.replicas):
            pod_name = f"{workload.name}-{digest}-{i}"
            plan = self.plan(release, workload, pod_name)
            container, ip = self._run(plan)
            probes = plan.containers[0].probes
            prober = Prober(probes, ip, functools.partial(docker.exec_code, container))
            prober.start()
            pod = RunningPod(workload.name, key, plan, container, ip, prober)
            self.pods[pod_name] = pod
            pods.append(pod)
        return pods

    def _wait_ready(self, workload: Workload, pods: list[RunningPod], subject: str) -> bool:
        if not pods:
            return True
        deadline = max(p.prober.ready_deadline() for p in pods)
        start = min(p.started for p in pods)
        while True:
            for pod in pods:
                failed = pod.prober.state.failed or self._exited(pod)
                if failed:
                    self.report.failed(
                        f"{subject} {workload.name}",
                        f"pod {pod.plan.name}: {failed}\n{docker.logs(pod.container, 25)}",
                    )
                    return False
            if all(p.prober.state.ready for p in pods):
                took = time.monotonic() - start
                self.report.passed(
                    f"{subject} {workload.name}",
                    f"{len(pods)}/{workload.replicas} pods ready in {took:.1f}s "
                    f"(probe budget {deadline:.0f}s)",
                )
                return True
            if time.monotonic() - start > deadline:
                waiting = [p.plan.name for p in pods if not p.prober.state.ready]
                last = {k: r.last_error for p in pods for k, r in p.prober.state.records.items()}
                self.report.failed(
                    f"{subject} {workload.name}",
                    f"not ready within its probes' budget of {deadline:.0f}s: {waiting}; "
                    f"last probe errors {last}\n{docker.logs(pods[0].container, 25)}",
                )
                return False
            time.sleep(0.25)

    def _exited(self, pod: RunningPod) -> str | None:
        status = docker.state(pod.container)
        if status["Status"] == "running":
            return None
        oom = " (OOMKilled)" if status.get("OOMKilled") else ""
        return f"container exited with code {status['ExitCode']}{oom}"

    def _stop_pod(self, name: str) -> int | None:
        pod = self.pods.pop(name)
        pod.prober.stop()
        self.finished.append(pod)
        self._save_log(pod.container)
        grace = pod.plan.containers[0].termination_grace_seconds
        docker.stop(pod.container, grace)
        code = docker.state(pod.container).get("ExitCode")
        docker.remove(pod.container)
        return int(code) if code is not None else None

    def _stop_workload(self, workload: str) -> None:
        for name in [n for n, p in self.pods.items() if p.workload == workload]:
            self._stop_pod(name)
        self.templates.pop(workload, None)

    # --- what the checks use ----------------------------------------------------------------

    def pods_of(self, workload: str) -> list[RunningPod]:
        return [p for p in self.pods.values() if p.workload == workload]

    def forward(self, pod: RunningPod, port: int) -> PortForward:
        """`kubectl port-forward pod/<name> <local>:<port>`."""
        forward = PortForward(pod.ip, port)
        self._forwards.append(forward)
        return forward

    def run_to_completion(
        self, release: Release, workload: Workload, timeout: float
    ) -> tuple[int | None, str]:
        """Run a run-once Pod (a helm test) and return its exit code and log."""
        plan = self.plan(release, workload, workload.name)
        container, _ = self._run(plan)
        try:
            code = docker.wait(container, timeout)
            return code, docker.logs(container, 40)
        finally:
            docker.remove(container)

    def stop_all(self) -> dict[str, list[int | None]]:
        """Stop every pod with its grace period; the exit codes per workload."""
        codes: dict[str, list[int | None]] = {}
        for name in list(self.pods):
            workload = self.pods[name].workload
            codes.setdefault(workload, []).append(self._stop_pod(name))
        return codes

    def _save_log(self, container: str) -> None:
        logs = self.workdir / "logs"
        logs.mkdir(exist_ok=True)
        (logs / f"{container}.log").write_text(docker.logs(container, 2000))

    def teardown(self) -> None:
        for pod in self.pods.values():
            self._save_log(pod.container)
        for forward in self._forwards:
            forward.close()
        for pod in self.pods.values():
            pod.prober.stop()
        ids = docker.docker(
            "ps", "--all", "--quiet", "--filter", f"label={self.label}", check=False
        )
        docker.remove(*ids.split())
        docker.docker("network", "rm", self.network, check=False)
