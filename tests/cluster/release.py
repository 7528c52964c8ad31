"""The Helm release under test: how to find its objects, drive helm, and call the API Service.

Requests to the API go through the Kubernetes API server's Service proxy
(`/api/v1/namespaces/NS/services/NAME:PORT/proxy/...`): it picks a ready endpoint of the
Service for every request, so the tests see what a client of the Service sees, and a pod
killed mid-test is routed around by the Service itself rather than by a port-forward that
is pinned to one pod.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from typing import Any, TypeVar

import pykube
from pytest_helm_charts.clusters import Cluster

_Obj = TypeVar("_Obj", bound=pykube.objects.APIObject)

# The iris setosa sample, in the order of the iris features (sepal length, sepal width,
# petal length, petal width); mapped onto whatever feature names the model reports.
SETOSA_SAMPLE = (5.1, 3.5, 1.4, 0.2)
SETOSA_LABELS = ("setosa", 0, "0")


@dataclass(frozen=True)
class Release:
    """Where the release lives and how helm reaches it."""

    cluster: Cluster
    name: str
    namespace: str
    chart_path: str
    kube_config: str

    @property
    def client(self) -> pykube.HTTPClient:
        client = self.cluster.kube_client
        assert client is not None, "kube_cluster fixture did not connect"
        return client

    def selector(self, **extra: str) -> dict[str, str]:
        return {"app.kubernetes.io/instance": self.name, **extra}

    def helm(self, *args: str, timeout: float = 900) -> str:
        """Run helm against the release's namespace; raise with helm's own message on failure."""
        cmd = ["helm", *args, "--namespace", self.namespace, "--kubeconfig", self.kube_config]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def deployments(self) -> list[pykube.Deployment]:
        query = pykube.Deployment.objects(self.client).filter(
            namespace=self.namespace, selector=self.selector()
        )
        return list(query)

    def api_deployment(self) -> pykube.Deployment:
        return _api_component(self.deployments(), self.name)

    def api_service(self) -> pykube.Service:
        services = pykube.Service.objects(self.client).filter(
            namespace=self.namespace, selector=self.selector()
        )
        return _api_component(list(services), self.name)

    def api_pods(self) -> list[pykube.Pod]:
        deployment = self.api_deployment()
        labels: dict[str, str] = deployment.obj["spec"]["selector"]["matchLabels"]
        pods = pykube.Pod.objects(self.client).filter(namespace=self.namespace, selector=labels)
        return [pod for pod in pods if "deletionTimestamp" not in pod.metadata]

    def api_request(
        self, method: str, path: str, json: Any = None, timeout: float = 10
    ) -> tuple[int, Any]:
        """Call the API through its Service; return (status, parsed JSON body or text)."""
        service = self.api_service()
        port = service.obj["spec"]["ports"][0]
        port_ref = port.get("name") or str(port["port"])
        url = f"services/{service.name}:{port_ref}/proxy{path}"
        response = self.client.request(
            method, url=url, namespace=self.namespace, json=json, timeout=timeout
        )
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        return response.status_code, body

    def model_info(self) -> dict[str, Any]:
        status, body = self.api_request("GET", "/model/info")
        assert status == 200, f"/model/info answered {status}: {body}"
        assert isinstance(body, dict)
        return body

    def served_version(self) -> str:
        info = self.model_info()
        version = info.get("version", info.get("model_version"))
        assert version is not None, f"/model/info names no version: {info}"
        return str(version)

    def setosa_request(self) -> dict[str, Any]:
        features = self.model_info().get("features") or [
            "sepal length (cm)",
            "sepal width (cm)",
            "petal length (cm)",
            "petal width (cm)",
        ]
        return {"features": dict(zip(features, SETOSA_SAMPLE, strict=True))}

    def wait_for_version(self, version: str, timeout: float = 300) -> None:
        """Wait until every answer of the Service comes from `version` (pods roll one by one)."""
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while time.monotonic() < deadline:
            seen = [self._version_or_error() for _ in range(6)]
            if all(v == version for v in seen):
                return
            time.sleep(3)
        raise AssertionError(f"the Service still answers versions {seen}, wanted {version}")

    def _version_or_error(self) -> str:
        try:
            return self.served_version()
        except (AssertionError, OSError) as exc:
            return f"error: {exc}"


def _api_component(objects: list[_Obj], release: str) -> _Obj:
    """Pick the API's object out of the release's: by component/name label, else by name."""
    for obj in objects:
        labels = obj.labels
        component = labels.get("app.kubernetes.io/component"), labels.get("app.kubernetes.io/name")
        if "api" in component:
            return obj
    for obj in objects:
        if obj.name.endswith("-api") or obj.name == f"{release}-api":
            return obj
    names = [obj.name for obj in objects]
    raise AssertionError(f"no API object among the release's {names}")


def pod_uids(pods: list[pykube.Pod]) -> set[str]:
    return {str(pod.metadata["uid"]) for pod in pods}
