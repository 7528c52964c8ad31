"""Cluster tests run against a release that is already installed in a real cluster.

They use pytest-helm-charts' fixtures and options. Opt in with
  --cluster-type existing --kube-config PATH [--chart-path charts/platform]
  [--test-extra-info release=platform,namespace=platform]
(or ATS_CLUSTER_TYPE=existing, KUBECONFIG, ATS_CHART_PATH, ATS_EXTRA_RELEASE, ...).
Without --cluster-type existing every cluster test is skipped with the reason, so a developer
whose KUBECONFIG points at a real cluster never installs into it by accident.
`make cluster-test` and .github/workflows/cluster.yml pass these options.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pytest_helm_charts.clusters import Cluster

from tests.cluster.release import Release

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_RELEASE = "platform"
DEFAULT_NAMESPACE = "platform"


def _option(config: pytest.Config, name: str, env: str) -> str:
    value = config.getoption(name, default=None)
    return str(value) if value else os.environ.get(env, "")


def _skip_reason(config: pytest.Config) -> str | None:
    """Why the cluster tests cannot run here, or None when a cluster was asked for."""
    cluster_type = _option(config, "cluster_type", "ATS_CLUSTER_TYPE")
    if not cluster_type:
        return (
            "no Kubernetes cluster configured: run with --cluster-type existing "
            "--kube-config PATH (make cluster-test; the cluster workflow does this in kind)"
        )
    if cluster_type != "existing":
        raise pytest.UsageError(f"--cluster-type {cluster_type!r}: only 'existing' is supported")
    kube_config = _option(config, "kube_config", "KUBECONFIG")
    if not kube_config or not Path(kube_config).is_file():
        raise pytest.UsageError(
            f"--cluster-type existing needs --kube-config PATH to a file (got {kube_config!r})"
        )
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    cluster_items = [item for item in items if item.get_closest_marker("cluster")]
    if not cluster_items:
        return
    reason = _skip_reason(config)
    if reason is None:
        return
    for item in cluster_items:
        item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="module")
def release(
    kube_cluster: Cluster,
    kube_config: str,
    chart_path: str,
    test_extra_info: dict[str, str],
) -> Release:
    """The installed release: name and namespace from --test-extra-info (or ATS_EXTRA_*)."""
    return Release(
        cluster=kube_cluster,
        name=test_extra_info.get("release", DEFAULT_RELEASE),
        namespace=test_extra_info.get("namespace", DEFAULT_NAMESPACE),
        chart_path=chart_path or str(REPO_ROOT / "charts" / "platform"),
        kube_config=kube_config,
    )
