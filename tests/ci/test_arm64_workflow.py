"""The arm64 workflow's wiring: it cannot run here, so what can be checked without GitHub is.

The x86-64 job's artifact must land where the arm64 job's check reads it, every `make` target it
calls must exist with the variables it sets, the runners must be the architectures the checks
mean, and the latency step must be the one that writes the job summary and fails on a missed
claim. actionlint, pinning and permissions are checked for every workflow in test_workflows.py.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = REPO_ROOT / ".github" / "workflows" / "arm64.yml"


def jobs() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    return loaded


def runs(job: dict[str, Any]) -> list[str]:
    return [step["run"] for step in job["steps"] if "run" in step]


def make_calls(job: dict[str, Any]) -> list[list[str]]:
    """Every `make ...` line of the job's run steps, split like a shell would."""
    calls = []
    for script in runs(job):
        for line in script.splitlines():
            words = shlex.split(line)
            if words[:1] == ["make"]:
                calls.append(words[1:])
    return calls


def step_using(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [step for step in job["steps"] if step.get("uses", "").startswith(action + "@")]


def test_the_reference_is_made_on_x86_64_and_checked_on_native_arm64() -> None:
    workflow = jobs()
    assert workflow["reference"]["runs-on"] in ("ubuntu-24.04", "ubuntu-latest")
    assert workflow["arm64"]["runs-on"] == "ubuntu-24.04-arm"
    assert workflow["arm64"]["needs"] == "reference"


def test_the_artifact_goes_where_the_check_reads_it() -> None:
    workflow = jobs()
    (upload,) = step_using(workflow["reference"], "actions/upload-artifact")
    (download,) = step_using(workflow["arm64"], "actions/download-artifact")
    assert upload["with"]["name"] == download["with"]["name"]
    assert upload["with"]["if-no-files-found"] == "error"
    # `make arm64-reference` writes its bundle to $(ARM64_WORK)/bundle.
    assert upload["with"]["path"] == "build/arm64/bundle"
    checks = [call for call in make_calls(workflow["arm64"]) if call[0] == "arm64-check"]
    assert checks == [["arm64-check", f"REFERENCE={download['with']['path']}"]]


def test_every_make_target_and_variable_the_jobs_use_exists() -> None:
    dry_runs = []
    for job in jobs().values():
        for call in make_calls(job):
            done = subprocess.run(
                ["make", "--dry-run", "--no-print-directory", *call],
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, f"make {' '.join(call)}: {done.stderr}"
            dry_runs.append(done.stdout)
    commands = "\n".join(dry_runs)
    assert "-m arm64 --work build/arm64 reference" in commands
    assert "check --reference build/arm64/bundle" in commands
    assert "bench --model build/arm64/bundle/models/iris-classifier --fail-on-missed" in commands
    assert "-m pytest -m image tests/image" in commands


def test_the_model_the_bench_measures_is_one_the_reference_trains() -> None:
    (bench,) = [call for call in make_calls(jobs()["arm64"]) if call[0] == "arm64-bench"]
    model_dir = dict(arg.split("=", 1) for arg in bench[1:])["MODEL_DIR"]
    from arm64.bundle import DATASETS

    name = Path(model_dir).name
    assert model_dir == f"build/arm64/bundle/models/{name}"
    assert re.match(rf"({'|'.join(DATASETS)})-(classifier|regressor)$", name)


def test_every_check_runs_and_reports_whatever_became_of_the_others() -> None:
    steps = jobs()["arm64"]["steps"]
    named = {step.get("name", ""): step for step in steps}
    latency = next(step for name, step in named.items() if name.startswith("In-server"))
    image = next(step for name, step in named.items() if name.startswith("Image tests"))
    for step in (latency, image):
        assert step["if"] == "${{ !cancelled() }}"
    assert image["env"]["IMAGE_TESTS_REQUIRE_DOCKER"] == "1"
    (results,) = [
        step
        for step in step_using(jobs()["arm64"], "actions/upload-artifact")
        if step["with"]["name"] == "arm64-results"
    ]
    assert results["if"] == "always()"
    assert "build/arm64/check-native.*" in results["with"]["path"]
    assert "build/arm64/bench-native.*" in results["with"]["path"]


def test_the_docs_command_reads_the_files_the_job_uploads() -> None:
    from arm64 import docs

    native = docs.sources(Path("build/arm64"), Path("artifact"))
    assert native["arm64-native-check"].name == "check-native.md"
    assert native["arm64-native-bench"].name == "bench-native.md"
