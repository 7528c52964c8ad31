"""The installed release is healthy: Deployments available, helm test green, /predict correct."""

from __future__ import annotations

import pytest
from pytest_helm_charts.k8s.deployment import wait_for_deployments_to_run

from tests.cluster.release import SETOSA_LABELS, Release

pytestmark = pytest.mark.cluster

AVAILABLE_TIMEOUT_SECONDS = 600


def test_every_deployment_of_the_release_becomes_available(release: Release) -> None:
    names = [deployment.name for deployment in release.deployments()]
    assert names, f"release {release.name!r} has no Deployments in {release.namespace!r}"
    wait_for_deployments_to_run(
        release.client, names, release.namespace, AVAILABLE_TIMEOUT_SECONDS, missing_ok=False
    )


def test_helm_test_passes(release: Release) -> None:
    release.helm("test", release.name, "--logs", "--timeout", "5m")


def test_predict_through_the_service_answers_correctly(release: Release) -> None:
    status, body = release.api_request("POST", "/predict", json=release.setosa_request())
    assert status == 200, body
    assert body["prediction"] in SETOSA_LABELS, body
