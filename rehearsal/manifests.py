"""Render the chart with helm and index the objects a rehearsal needs."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "platform"
HELM = ROOT / ".tools" / "bin" / "helm"

Manifest = dict[str, Any]


class RenderError(RuntimeError):
    """helm template refused the values."""


@dataclass(frozen=True)
class Workload:
    """A Deployment (or a bare Pod) and the pods it would run."""

    kind: str
    name: str
    replicas: int
    labels: dict[str, str]
    pod_spec: Manifest
    pod_annotations: dict[str, str]

    def template_key(self) -> str:
        """What Kubernetes compares to decide whether a Deployment rolls: its pod template."""
        return yaml.safe_dump(
            {"labels": self.labels, "annotations": self.pod_annotations, "spec": self.pod_spec},
            sort_keys=True,
        )


@dataclass
class Release:
    """One rendered revision: every object, plus the views a rehearsal uses."""

    namespace: str
    objects: list[Manifest]
    hooks: list[Manifest] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[Manifest]:
        return [o for o in self.objects if o["kind"] == kind]

    def config_maps(self) -> dict[str, dict[str, str]]:
        return {o["metadata"]["name"]: dict(o.get("data") or {}) for o in self.of_kind("ConfigMap")}

    def workloads(self) -> list[Workload]:
        """Deployments with their replica count (an HPA's minReplicas when one scales them)."""
        scaled = {
            h["spec"]["scaleTargetRef"]["name"]: int(h["spec"].get("minReplicas", 1))
            for h in self.of_kind("HorizontalPodAutoscaler")
        }
        out = []
        for d in self.of_kind("Deployment"):
            name = d["metadata"]["name"]
            template = d["spec"]["template"]
            meta = template.get("metadata") or {}
            out.append(
                Workload(
                    kind="Deployment",
                    name=name,
                    replicas=scaled.get(name, int(d["spec"].get("replicas", 1))),
                    labels=dict(meta.get("labels") or {}),
                    pod_spec=template["spec"],
                    pod_annotations=dict(meta.get("annotations") or {}),
                )
            )
        return out

    def hook_jobs(self, event: str) -> list[Workload]:
        """The Jobs Helm runs at `event` (post-install, post-upgrade), by weight, then name."""
        jobs = [
            h
            for h in self.hooks
            if h["kind"] == "Job"
            and event in h["metadata"].get("annotations", {}).get("helm.sh/hook", "").split(",")
        ]
        jobs.sort(
            key=lambda j: (
                int(j["metadata"]["annotations"].get("helm.sh/hook-weight", "0")),
                j["metadata"]["name"],
            )
        )
        return [
            Workload(
                kind="Job",
                name=j["metadata"]["name"],
                replicas=1,
                labels=dict((j["spec"]["template"].get("metadata") or {}).get("labels") or {}),
                pod_spec=j["spec"]["template"]["spec"],
                pod_annotations=dict(
                    (j["spec"]["template"].get("metadata") or {}).get("annotations") or {}
                ),
            )
            for j in jobs
        ]

    def test_pods(self) -> list[Workload]:
        """The `helm test` Pods (hook `test`), in the order helm runs them (by weight, then name)."""
        pods = [
            h
            for h in self.hooks
            if h["kind"] == "Pod"
            and "test" in h["metadata"].get("annotations", {}).get("helm.sh/hook", "").split(",")
        ]
        pods.sort(
            key=lambda p: (
                int(p["metadata"]["annotations"].get("helm.sh/hook-weight", "0")),
                p["metadata"]["name"],
            )
        )
        return [
            Workload(
                kind="Pod",
                name=p["metadata"]["name"],
                replicas=1,
                labels=dict(p["metadata"].get("labels") or {}),
                pod_spec=p["spec"],
                pod_annotations=dict(p["metadata"].get("annotations") or {}),
            )
            for p in pods
        ]


def helm_template_args(
    release: str,
    namespace: str,
    values: Sequence[Path],
    sets: Sequence[str] = (),
    api_versions: Sequence[str] = (),
) -> list[str]:
    """The `helm template` command line, as a user's `helm upgrade --install` would render."""
    args = [str(HELM), "template", release, str(CHART), "--namespace", namespace]
    for path in values:
        args += ["--values", str(path)]
    for item in sets:
        args += ["--set", item]
    for api in api_versions:
        args += ["--api-versions", api]
    return args


def parse(text: str, namespace: str) -> Release:
    """Split `helm template` output into regular objects and hooks."""
    objects: list[Manifest] = []
    hooks: list[Manifest] = []
    for doc in yaml.safe_load_all(text):
        if not doc:
            continue
        annotations = doc.get("metadata", {}).get("annotations") or {}
        (hooks if "helm.sh/hook" in annotations else objects).append(doc)
    return Release(namespace=namespace, objects=objects, hooks=hooks)


def render(
    release: str,
    namespace: str,
    values: Sequence[Path],
    sets: Sequence[str] = (),
    api_versions: Sequence[str] = (),
) -> Release:
    """Run helm template and parse it; RenderError carries helm's message."""
    done = subprocess.run(
        helm_template_args(release, namespace, values, sets, api_versions),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RenderError(done.stderr.strip())
    return parse(done.stdout, namespace)
