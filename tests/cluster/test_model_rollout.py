"""Model version changes go through helm: upgrade rolls the API pods, rollback undoes it.

The cluster workflow registers two versions of the model before these tests run and installs
the release serving the `production` alias (version 1); the upgrade pins another version
(--test-extra-info upgrade_version=2, the default).
"""

from __future__ import annotations

import time

import pytest

from tests.cluster.release import Release, pod_uids

pytestmark = pytest.mark.cluster

ROLL_TIMEOUT_SECONDS = 600


@pytest.fixture(scope="module")
def versions(release: Release, test_extra_info: dict[str, str]) -> tuple[str, str]:
    """(version served before the upgrade, version the upgrade pins)."""
    before = release.served_version()
    target = test_extra_info.get("upgrade_version", "2")
    assert before != target, f"the release already serves version {target}: nothing to roll"
    return before, target


def _wait_for_replaced_api_pods(release: Release, old: set[str]) -> set[str]:
    deadline = time.monotonic() + ROLL_TIMEOUT_SECONDS
    current: set[str] = set()
    while time.monotonic() < deadline:
        pods = release.api_pods()
        current = pod_uids(pods)
        if pods and not current & old and all(pod.ready for pod in pods):
            return current
        time.sleep(2)
    raise AssertionError(f"API pods {sorted(current & old)} were not replaced")


def test_upgrade_to_a_pinned_model_version_rolls_the_api_pods(
    release: Release, versions: tuple[str, str], test_extra_info: dict[str, str]
) -> None:
    _, target = versions
    model = test_extra_info.get("model_name", "iris-classifier")
    old_pods = pod_uids(release.api_pods())

    release.helm(
        "upgrade", release.name, release.chart_path, "--reuse-values",
        "--set", f"api.model.uri=models:/{model}/{target}",
        "--rollback-on-failure", "--wait", "--timeout", "10m",  # Helm 4 (the pinned v4.1.4)
    )  # fmt: skip

    _wait_for_replaced_api_pods(release, old_pods)
    release.wait_for_version(target)


def test_rollback_brings_the_previous_model_version_back(
    release: Release, versions: tuple[str, str]
) -> None:
    before, target = versions
    assert release.served_version() == target, "the upgrade test did not leave the new version"
    old_pods = pod_uids(release.api_pods())

    release.helm("rollback", release.name, "--wait", "--timeout", "10m")

    _wait_for_replaced_api_pods(release, old_pods)
    release.wait_for_version(before)
