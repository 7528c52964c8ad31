"""The closed loop in the chart: the API's store settings from a Secret, the optional judge."""

from typing import Any

import pytest

from tests.chart.conftest import container, find, helm, render, template_args

pytestmark = pytest.mark.chart

FEEDBACK = [
    "api.feedback.enabled=true",
    "api.feedback.store.existingSecret=prediction-store",
]
JUDGE = [
    *FEEDBACK,
    "api.judge.enabled=true",
    "api.judge.image.repository=registry.example/platform-training",
    "api.judge.image.tag=1.2.3",
]


def env(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container(deployment, "api").get("env", [])}


def test_recording_is_off_by_default_and_nothing_of_the_loop_renders() -> None:
    objs = render()
    assert find(objs, "ConfigMap", "platform-api")["data"]["RECORD_PREDICTIONS"] == "false"
    assert "PREDICTION_STORE_URI" not in env(find(objs, "Deployment", "platform-api"))
    assert not [o for o in objs if o["kind"] == "CronJob"]


def test_the_store_uri_comes_from_the_secret_never_from_values() -> None:
    objs = render(sets=FEEDBACK)
    data = find(objs, "ConfigMap", "platform-api")["data"]
    assert data["RECORD_PREDICTIONS"] == "true"
    assert data["QUALITY_MARGIN"] == "0.05"
    assert data["QUALITY_MIN_LABELS"] == "100"
    assert "PREDICTION_STORE_URI" not in data
    uri = env(find(objs, "Deployment", "platform-api"))["PREDICTION_STORE_URI"]
    assert uri["valueFrom"]["secretKeyRef"] == {"name": "prediction-store", "key": "uri"}


def test_the_judge_cronjob_scrapes_every_pod_and_reads_the_same_store() -> None:
    objs = render(sets=JUDGE)
    cronjob = find(objs, "CronJob", "platform-api-judge")
    spec = cronjob["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    (judge,) = pod["containers"]
    assert judge["image"] == "registry.example/platform-training:1.2.3"
    assert judge["command"] == ["python", "-m", "training.judge"]
    assert "--metrics-url=http://platform-api-pods.platform.svc:8000/metrics" in judge["args"]
    variables = {e["name"]: e for e in judge["env"]}
    assert variables["PREDICTION_STORE_URI"]["valueFrom"]["secretKeyRef"]["name"] == (
        "prediction-store"
    )
    assert variables["MLFLOW_TRACKING_URI"]["value"] == "http://platform-mlflow:5000"
    assert judge["securityContext"]["readOnlyRootFilesystem"] is True
    headless = find(objs, "Service", "platform-api-pods")
    assert headless["spec"]["clusterIP"] == "None"


def judge_container(sets: list[str]) -> dict[str, Any]:
    cronjob = find(render(sets=sets), "CronJob", "platform-api-judge")
    (judge,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    return dict(judge)


def test_the_judge_runs_the_published_training_image_by_default() -> None:
    """Enabling the judge needs no image of one's own: build.yml pushes <api repo>/training."""
    judge = judge_container([*FEEDBACK, "api.judge.enabled=true"])
    assert judge["image"] == "ghcr.io/owner/mlops-model-platform/training:0.1.0"
    tagged = judge_container([*FEEDBACK, "api.judge.enabled=true", "api.image.tag=" + "a" * 40])
    assert tagged["image"] == "ghcr.io/owner/mlops-model-platform/training:" + "a" * 40


def test_a_judge_image_of_ones_own_does_not_take_the_apis_tag() -> None:
    """The API's tag (a commit in deploy.yml) is not a tag of another repository."""
    own = judge_container(
        [*FEEDBACK, "api.judge.enabled=true", "api.judge.image.repository=registry.example/t",
         "api.image.tag=" + "a" * 40]
    )  # fmt: skip
    assert own["image"] == "registry.example/t:0.1.0"  # the chart's appVersion, as before


def test_the_judge_image_can_be_pinned_by_digest() -> None:
    digest = "sha256:" + "0" * 64
    api_digest = "sha256:" + "1" * 64
    judge = judge_container(
        [*FEEDBACK, "api.judge.enabled=true", f"api.judge.image.digest={digest}",
         f"api.image.digest={api_digest}"]
    )  # fmt: skip
    assert judge["image"] == f"ghcr.io/owner/mlops-model-platform/training@{digest}"


@pytest.mark.parametrize(
    ("sets", "says"),
    [
        (["api.feedback.enabled=true"], "api.feedback.store.existingSecret is required"),
        (
            ["api.judge.enabled=true", "api.judge.image.repository=x"],
            "api.judge.enabled needs api.feedback.enabled",
        ),
    ],
)
def test_incomplete_loop_settings_fail_the_render(sets: list[str], says: str) -> None:
    result = helm(*template_args(sets=sets))
    assert result.returncode != 0
    assert says in result.stderr
