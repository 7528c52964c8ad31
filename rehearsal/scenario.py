"""The rehearsal of one environment, from an empty namespace to a rollback, as the guide runs it.

1. The guide's first install: every component but the API (`--set api.enabled=false`).
2. The guide's first model: `make train` (and `make promote` for an alias other than
   production) through a port-forward to the release's MLflow.
3. The full install; the API must serve `source: registry` at the pinned or aliased version.
4. Every `helm test` Pod runs and passes.
5. Standalone monitoring: Prometheus loads the rendered configuration and rules, and the API
   and MLflow targets are up.
6. Rollback: revision B (model version 2) runs, then the API of revision A again, which must
   serve version 1.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rehearsal import docker, images, user_steps
from rehearsal.cluster import Cluster, RunningPod
from rehearsal.manifests import CHART, ROOT, Release, RenderError, Workload, render
from rehearsal.podspec import ConfigError, Unrehearsable
from rehearsal.report import Report

RELEASE = "platform"
ENVIRONMENTS = {
    "": [],
    "staging": ["values-staging.yaml"],
    "production": ["values-production.yaml"],
}
# Components whose images this machine can neither pull nor build, and why.
NOT_BUILDABLE = {
    "grafana": "the Grafana image cannot be pulled here (no container registry) nor built from source",
    "cloudflared": "the cloudflared image cannot be pulled here, and a tunnel needs a token and Cloudflare's edge",
}
NOT_REHEARSED_KINDS = {
    "NetworkPolicy": "Docker does not enforce NetworkPolicies; every pod can reach every other",
    "PodDisruptionBudget": "no voluntary disruptions (node drains) happen in a rehearsal",
    "HorizontalPodAutoscaler": "no autoscaler: its minReplicas pods run",
    "ServiceMonitor": "needs the Prometheus Operator (kube-prometheus-stack), which cannot run here",
    "PrometheusRule": "needs the Prometheus Operator; the rules are checked by promtool's unit tests",
}


@dataclass(frozen=True)
class Options:
    env: str
    api_image: str
    workdir: Path
    keep: bool = False
    guide: Path = user_steps.GUIDE
    extra_sets: tuple[str, ...] = ()


def _get_json(
    url: str, auth: tuple[str, str] | None = None, timeout: float = 10, key: str | None = None
) -> Any:
    request = urllib.request.Request(url)  # noqa: S310 - port-forwards on loopback
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    if key is not None:  # an API key: model metadata needs one when keys are set
        request.add_header("Authorization", f"Bearer {key}")
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        return json.load(response)


def _post_json(url: str, body: dict[str, Any], auth: tuple[str, str] | None = None) -> Any:
    request = urllib.request.Request(  # noqa: S310 - port-forwards on loopback
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return json.load(response)


def referenced_secrets(release: Release) -> dict[str, str]:
    """Secret name -> the object that needs it, over every pod template and hook."""
    found: dict[str, str] = {}
    workloads = release.workloads() + release.test_pods()
    for w in workloads:
        spec = w.pod_spec
        for volume in spec.get("volumes") or []:
            if "secret" in volume:
                found.setdefault(volume["secret"]["secretName"], w.name)
        for pull in spec.get("imagePullSecrets") or []:
            found.setdefault(pull["name"], w.name)
        for c in spec["containers"]:
            for source in c.get("envFrom") or []:
                if "secretRef" in source:
                    found.setdefault(source["secretRef"]["name"], w.name)
            for entry in c.get("env") or []:
                ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    found.setdefault(ref["name"], w.name)
    return found


class Rehearsal:
    """One environment's rehearsal; `run()` returns the process exit code."""

    def __init__(self, options: Options, report: Report) -> None:
        self.options = options
        self.report = report
        self.values = [CHART / f for f in ENVIRONMENTS[options.env]]
        self.namespace = "platform"
        self.images: images.Images | None = None
        self.cluster: Cluster | None = None
        self.mlflow_auth: tuple[str, str] | None = None
        self.api_key: str | None = None

    # --- preparation --------------------------------------------------------------------------

    def prepare_images(self) -> bool:
        logs = self.options.workdir
        report = self.report
        try:
            started = time.monotonic()
            api = images.api_image(self.options.api_image, logs / "make-image.log")
            report.passed(
                "image api",
                f"{api} (make image: the Dockerfile on the local base; {time.monotonic() - started:.0f}s)",
            )
            pinned = images.chart_mlflow_tag(self.values).removeprefix("v")
            locked = images.locked_version("mlflow")
            if not report.check(
                pinned == locked,
                "image mlflow version",
                f"the chart pins MLflow {pinned}, uv.lock {locked}",
            ):
                return False
            mlflow = images.mlflow_image(pinned, logs / "mlflow-image.log")
            report.passed(
                "image mlflow",
                f"{mlflow} (deploy/compose/mlflow.Dockerfile: MLflow {pinned} with auth, PostgreSQL, S3, metrics)",
            )
            prometheus, version = images.prometheus_image(logs / "prometheus-image.log")
            report.passed(
                "image prometheus",
                f"{prometheus} (Debian's prometheus {version}; the chart pins the official image)",
            )
        except images.BuildError as exc:
            report.failed("images", str(exc))
            return False
        self.images = images.Images(api, mlflow, prometheus, pinned, version)
        return True

    def render(self, *sets: str) -> Release | None:
        assert self.images is not None
        try:
            return render(
                RELEASE,
                self.namespace,
                self.values,
                [*self.images.sets(), *self.options.extra_sets, *sets],
            )
        except RenderError as exc:
            self.report.failed("render", str(exc))
            return None

    def runnable(self, workload: Workload) -> str | None:
        """None when the workload's image is here; else why it is skipped."""
        component = workload.labels.get("app.kubernetes.io/name", workload.name)
        image = workload.pod_spec["containers"][0]["image"]
        if docker.image_exists(image):
            return None
        return NOT_BUILDABLE.get(component, f"image {image} is not available here")

    def list_not_rehearsed(self, release: Release) -> None:
        if {"ServiceMonitor", "PrometheusRule"} & {o["kind"] for o in release.objects}:
            self.report.skipped(
                "Prometheus Operator",
                "kube-prometheus-stack is not part of this chart and its images cannot be pulled "
                "here; its objects below are rendered, schema-checked and promtool-tested only",
            )
        for o in release.objects:
            reason = NOT_REHEARSED_KINDS.get(o["kind"])
            if reason:
                self.report.skipped(f"{o['kind']} {o['metadata']['name']}", reason)
        for w in release.workloads():
            reason = self.runnable(w)
            if reason:
                image = w.pod_spec["containers"][0]["image"]
                self.report.skipped(f"workload {w.name}", f"{image}: {reason}")
        labels = [o for o in release.objects if o["kind"] == "ConfigMap"]
        for cm in labels:
            if "grafana_dashboard" in (cm["metadata"].get("labels") or {}):
                self.report.skipped(
                    f"ConfigMap {cm['metadata']['name']}",
                    "dashboards for the Grafana sidecar of kube-prometheus-stack, which cannot run here",
                )

    # --- the steps ----------------------------------------------------------------------------

    def check_secrets(self, release: Release, secrets: Mapping[str, Mapping[str, str]]) -> bool:
        needed = referenced_secrets(release)
        missing = {name: who for name, who in needed.items() if name not in secrets}
        guide = self.options.guide.relative_to(ROOT)
        if missing:
            listed = ", ".join(f"{n} (used by {w})" for n, w in sorted(missing.items()))
            self.report.failed("secrets", f"{guide} does not create {listed}")
            return False
        self.report.passed(
            "secrets",
            f"{guide} creates all {len(needed)} Secrets the values refer to: {', '.join(sorted(needed))}",
        )
        return True

    def mlflow_pod(self) -> RunningPod | None:
        assert self.cluster is not None
        pods = self.cluster.pods_of(f"{RELEASE}-mlflow")
        return pods[0] if pods else None

    def register_first_model(self, release: Release) -> bool:
        """The guide's first model, through a port-forward to MLflow, with its admin login."""
        assert self.cluster is not None
        pod = self.mlflow_pod()
        if pod is None:
            self.report.failed("first model", "no MLflow pod is running to register it in")
            return False
        env = pod.plan.containers[0].env
        if "MLFLOW_AUTH_ADMIN_USERNAME" in env:
            self.mlflow_auth = (
                env["MLFLOW_AUTH_ADMIN_USERNAME"],
                env["MLFLOW_AUTH_ADMIN_PASSWORD"],
            )
        uri = self.model_uri(release)
        steps: list[tuple[str, ...]] = [user_steps.TRAIN]
        alias = uri.split("@", 1)[1] if "@" in uri else None
        if alias is not None and alias != "production":
            steps.append(tuple(s.format(version=1, alias=alias) for s in user_steps.PROMOTE_ALIAS))
        return self.run_make(steps, "first model")

    def run_make(self, steps: list[tuple[str, ...]], subject: str) -> bool:
        pod = self.mlflow_pod()
        assert self.cluster is not None
        assert pod is not None
        forward = self.cluster.forward(pod, 5000)
        env = {**os.environ, "MLFLOW_TRACKING_URI": forward.url}
        if self.mlflow_auth:
            env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"] = self.mlflow_auth
        said = []
        for step in steps:
            started = time.monotonic()
            done = subprocess.run(
                [step[0], "--no-print-directory", *step[1:]],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
            command = " ".join(step)
            if done.returncode != 0:
                tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-12:])
                self.report.failed(subject, f"`{command}` exited {done.returncode}:\n{tail}")
                return False
            last = [line for line in done.stdout.splitlines() if line.strip()]
            said.append(
                f"`{command}` ({time.monotonic() - started:.0f}s): {last[-1] if last else ''}"
            )
        self.report.passed(subject, "; ".join(said))
        return True

    @staticmethod
    def model_uri(release: Release) -> str:
        return release.config_maps()[f"{RELEASE}-api"]["MODEL_URI"]

    def expected_version(self, uri: str) -> str | None:
        """The version a registry URI names: pinned, or what its alias points at in MLflow."""
        match = re.fullmatch(r"models:/([^/@]+)(?:/(\d+)|@(.+))", uri)
        if match is None:
            return None
        name, version, alias = match.groups()
        if version:
            return version
        pod = self.mlflow_pod()
        assert self.cluster is not None
        assert pod is not None
        forward = self.cluster.forward(pod, 5000)
        query = urllib.parse.urlencode({"name": name, "alias": alias})
        try:
            body = _get_json(
                f"{forward.url}/api/2.0/mlflow/registered-models/alias?{query}", self.mlflow_auth
            )
        except (OSError, ValueError):
            return None
        return str(body["model_version"]["version"])

    def check_serving(self, release: Release, subject: str) -> bool:
        """Every API pod serves source registry at the version the release's URI names."""
        assert self.cluster is not None
        uri = self.model_uri(release)
        expected = self.expected_version(uri)
        pods = self.cluster.pods_of(f"{RELEASE}-api")
        if not pods:
            self.report.failed(subject, "no API pod is running")
            return False
        # A pinned version is loaded at start; an alias is followed within one poll.
        deadline = time.monotonic() + 30
        answers: list[dict[str, Any]] = []
        while True:
            answers = []
            for pod in pods:
                forward = self.cluster.forward(pod, 8000)
                try:
                    answers.append(_get_json(f"{forward.url}/model/info", key=self.api_key))
                except (OSError, ValueError) as exc:
                    answers.append({"error": str(exc)})
            good = all(
                a.get("source") == "registry" and str(a.get("version")) == expected for a in answers
            )
            if good or time.monotonic() > deadline:
                break
            time.sleep(1)
        seen = sorted({f"source={a.get('source')} version={a.get('version')}" for a in answers})
        return self.report.check(
            good,
            subject,
            f"{len(pods)} API pods serve {', '.join(seen)}; {uri} names version {expected} "
            "from the registry",
        )

    def _run_once(self, release: Release, workload: Workload, subject: str) -> bool:
        """Run a run-once Pod (a hook Job's, a helm test) to completion; report its exit."""
        assert self.cluster is not None
        try:
            code, log = self.cluster.run_to_completion(release, workload, timeout=300)
        except (ConfigError, Unrehearsable, docker.DockerError) as exc:
            return self.report.check(False, subject, str(exc))
        last = log.strip().splitlines()[-1] if log.strip() else ""
        return self.report.check(code == 0, subject, f"exit {code}: {last if code == 0 else log}")

    def hooks(self, release: Release, event: str, subject: str) -> bool:
        """Run the release's hook Jobs for `event` to completion, as Helm does after a release."""
        ok = True
        for job in release.hook_jobs(event):
            reason = self.runnable(job)
            if reason is not None:
                self.report.skipped(f"{subject} hook {job.name}", reason)
                continue
            ok = self._run_once(release, job, f"{subject} hook {job.name} ({event})") and ok
        return ok

    def helm_tests(self, release: Release) -> bool:
        tests = release.test_pods()
        if not tests:
            self.report.failed("helm test", "the release renders no helm test Pod")
            return False
        ok = True
        for pod in tests:
            ok = self._run_once(release, pod, f"helm test {pod.name}") and ok
        return ok

    def check_prometheus(self, release: Release) -> bool:
        """The rendered config and rules load, and every API and MLflow target is up == 1."""
        assert self.cluster is not None
        pods = self.cluster.pods_of(f"{RELEASE}-prometheus")
        if not pods:
            self.report.skipped(
                "prometheus checks", "no standalone Prometheus in this release (operator mode)"
            )
            return True
        forward = self.cluster.forward(pods[0], 9090)
        rules_cm = release.config_maps().get(f"{RELEASE}-prometheus-rules", {})
        expected_groups = {
            g["name"] for text in rules_cm.values() for g in yaml.safe_load(text)["groups"]
        }
        try:
            groups = _get_json(f"{forward.url}/api/v1/rules")["data"]["groups"]
        except (OSError, ValueError, KeyError) as exc:
            return self.report.check(False, "prometheus rules", str(exc))
        loaded = {g["name"] for g in groups}
        rules = sum(len(g["rules"]) for g in groups)
        ok = self.report.check(
            loaded == expected_groups and bool(loaded),
            "prometheus rules",
            f"{rules} rules in groups {sorted(loaded)} loaded from the rendered ConfigMap",
        )
        config = yaml.safe_load(release.config_maps()[f"{RELEASE}-prometheus"]["prometheus.yml"])
        interval = config.get("global", {}).get("scrape_interval", "1m")
        seconds = float(interval[:-1]) * {"s": 1, "m": 60}[interval[-1]]
        expected = {
            "model-platform-api": len(self.cluster.pods_of(f"{RELEASE}-api")),
            "model-platform-mlflow": len(self.cluster.pods_of(f"{RELEASE}-mlflow")),
        }
        deadline = time.monotonic() + 4 * seconds + 30
        found: dict[str, list[str]] = {}
        while True:
            found = {}
            try:
                query = urllib.parse.urlencode({"query": "up"})
                result = _get_json(f"{forward.url}/api/v1/query?{query}")["data"]["result"]
            except (OSError, ValueError, KeyError):
                result = []
            for series in result:
                job = series["metric"].get("job", "")
                found.setdefault(job, []).append(series["value"][1])
            done = all(
                len(found.get(job, [])) == count and set(found[job]) == {"1"}
                for job, count in expected.items()
            )
            if done or time.monotonic() > deadline:
                break
            time.sleep(2)
        for job, count in expected.items():
            values = found.get(job, [])
            ok = (
                self.report.check(
                    len(values) == count and set(values) == {"1"},
                    f"prometheus target {job}",
                    f"up = {values or 'no series'} for {count} pods (scrape interval {interval})",
                )
                and ok
            )
        return ok

    def rollback(self, revision_a: Release) -> bool:
        """B pins version 2; A again must serve version 1 (the guide's `helm rollback`)."""
        assert self.cluster is not None
        uri = self.model_uri(revision_a)
        match = re.fullmatch(r"models:/([^/@]+)(?:/\d+|@.+)", uri)
        if match is None:
            self.report.skipped("rollback", f"{uri} is not a registry URI")
            return True
        if not self.register_copy(match.group(1)):
            return False
        revision_b = self.render(f"api.model.uri=models:/{match.group(1)}/2")
        if revision_b is None:
            return False
        ok = self.cluster.apply(revision_b, self.runnable, "rollback: revision B")
        ok = ok and self.hooks(revision_b, "post-upgrade", "rollback: revision B")
        ok = ok and self.check_serving(revision_b, "rollback: revision B serves")
        ok = ok and self.cluster.apply(revision_a, self.runnable, "rollback: revision A again")
        ok = ok and self.hooks(revision_a, "post-rollback", "rollback: revision A again")
        ok = ok and self.check_serving(revision_a, "rollback: revision A serves")
        return ok

    def register_copy(self, name: str) -> bool:
        """Model version 2: version 1's files registered again, through MLflow's REST API."""
        pod = self.mlflow_pod()
        assert self.cluster is not None
        assert pod is not None
        url = self.cluster.forward(pod, 5000).url + "/api/2.0/mlflow/model-versions"
        try:
            # A registered version as the source: MLflow copies its files and lineage.
            body = {"name": name, "source": f"models:/{name}/1"}
            created = _post_json(f"{url}/create", body, self.mlflow_auth)["model_version"]
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode(errors="replace")
            return self.report.check(False, "rollback: model version 2", f"{exc}: {detail}")
        except (OSError, ValueError, KeyError) as exc:
            return self.report.check(False, "rollback: model version 2", str(exc))
        return self.report.check(
            str(created["version"]) == "2",
            "rollback: model version 2",
            f"models:/{name}/1 registered again as version {created['version']} (MLflow's REST API)",
        )

    def probe_summary(self) -> bool:
        assert self.cluster is not None
        ok = True
        by_workload: dict[str, list[RunningPod]] = {}
        for pod in [*self.cluster.finished, *self.cluster.pods.values()]:
            by_workload.setdefault(pod.workload, []).append(pod)
        for workload, pods in sorted(by_workload.items()):
            parts = []
            failed = [p.prober.state.failed for p in pods if p.prober.state.failed]
            for kind in ("startup", "liveness", "readiness"):
                records = [
                    p.prober.state.records[kind] for p in pods if kind in p.prober.state.records
                ]
                if records:
                    checks = sum(r.checks for r in records)
                    failures = sum(r.failures for r in records)
                    parts.append(
                        f"{kind} {records[0].probe.describe()}: {checks} checks, {failures} failed"
                    )
            ready = all(p.prober.state.ready for p in self.cluster.pods_of(workload))
            ok = (
                self.report.check(
                    not failed and ready,
                    f"probes {workload}",
                    "; ".join(parts)
                    + ("" if ready else "; NOT READY now")
                    + (f"; {failed}" if failed else ""),
                )
                and ok
            )
        return ok

    def shutdown(self) -> bool:
        assert self.cluster is not None
        ok = True
        for workload, codes in sorted(self.cluster.stop_all().items()):
            ok = (
                self.report.check(
                    all(c == 0 for c in codes),
                    f"shutdown {workload}",
                    f"SIGTERM, then exit codes {codes} within the grace period",
                )
                and ok
            )
        return ok

    # --- the whole run ------------------------------------------------------------------------

    def run(self) -> int:
        report = self.report
        env = self.options.env or "default values"
        print(
            f"Rehearsal of charts/platform ({env}), release {RELEASE} in namespace {self.namespace}"
            + (
                f", with --set {' '.join(self.options.extra_sets)}"
                if self.options.extra_sets
                else ""
            )
        )
        names = user_steps.namespaces(self.options.guide.read_text())
        report.check(
            names == {self.namespace},
            "guide namespace",
            f"the guide's kubectl and helm commands use namespace(s) {sorted(names)}",
        )
        if not self.prepare_images():
            return 1
        secrets = user_steps.guide_secrets(self.options.guide)
        # The API key the guide's Secret holds, for the checks that read model metadata.
        self.api_key = next(
            (
                key.strip()
                for data in secrets.values()
                for key in data.get("api-keys", "").replace(",", "\n").splitlines()
                if key.strip()
            ),
            None,
        )
        first = self.render(user_steps.FIRST_INSTALL_SET)
        full = self.render()
        if first is None or full is None:
            return 1
        self.check_secrets(full, secrets)
        self.list_not_rehearsed(full)
        assert self.images is not None
        self.cluster = Cluster(
            uuid.uuid4().hex[:8], self.namespace, self.options.workdir, report, secrets
        )
        try:
            # `helm upgrade --install` runs the post-install hooks the first time, then the
            # post-upgrade ones, each after the release's workloads are ready (--wait).
            if (
                self.cluster.apply(first, self.runnable, "first install (api.enabled=false):")
                and self.hooks(first, "post-install", "first install")
                and self.register_first_model(full)
                and self.cluster.apply(full, self.runnable, "install:")
                and self.hooks(full, "post-upgrade", "install")
            ):
                self.check_serving(full, "serving")
                self.helm_tests(full)
                self.check_prometheus(full)
                self.rollback(full)
                self.probe_summary()
                self.shutdown()
        finally:
            if not self.options.keep:
                self.cluster.teardown()
        print(report.summary())
        return 1 if report.failures else 0


def main(
    env: str,
    api_image: str,
    keep: bool = False,
    workdir: Path | None = None,
    extra_sets: tuple[str, ...] = (),
) -> int:
    """Run one environment's rehearsal; print its lines; return the exit code."""
    if env not in ENVIRONMENTS:
        raise SystemExit(f"ENV must be one of {sorted(ENVIRONMENTS)}, got {env!r}")
    with tempfile.TemporaryDirectory(prefix="rehearsal-") as tmp:
        workdir = workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        options = Options(env, api_image, workdir, keep, extra_sets=extra_sets)
        return Rehearsal(options, Report()).run()
