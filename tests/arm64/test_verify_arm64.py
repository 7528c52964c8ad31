"""`make verify-arm64` for real: the emulated arm64 root against this x86-64 machine.

The first run on a machine builds the arm64 root (debootstrap under emulation, then the locked
runtime set from wheels): minutes. Later runs reuse it. The models are the session's trained
ones (tests/conftest.py), so nothing is trained twice. The tests skip only where emulation cannot
be set up at all, and never under CI=true, where that is a failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from arm64.__main__ import export_requirements
from arm64.runners import Emulated, PrerequisiteMissing, build_root, leftovers
from tests.conftest import TrainedStore
from tests.processes import REPO_ROOT

pytestmark = [pytest.mark.arm64, pytest.mark.timeout(3600)]

HELD_OUT_ROWS = {"iris-classifier": 30, "wine-classifier": 36, "diabetes-regressor": 89}


@pytest.fixture(scope="session")
def emulated(tmp_path_factory: pytest.TempPathFactory) -> Emulated:
    """The arm64 root with the locked runtime set, set up and built when missing."""
    work = tmp_path_factory.mktemp("arm64-work")
    setup = subprocess.run(
        [str(REPO_ROOT / "scripts" / "arm64-emulation.sh")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    try:
        if setup.returncode != 0:
            raise PrerequisiteMissing(setup.stderr)
        started = time.monotonic()
        root = build_root(export_requirements(work / "runtime-requirements.txt"), work)
    except PrerequisiteMissing as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"arm64 emulation cannot be set up here:\n{exc}")
        pytest.skip(f"arm64 emulation cannot be set up here:\n{exc}")
    print(f"arm64 root ready in {time.monotonic() - started:.0f}s: {root.root}")
    return root


@pytest.fixture(scope="session")
def verified(
    emulated: Emulated, trained_store: TrainedStore, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """One `python -m arm64 verify` run over the session's three models; its result file."""
    work = tmp_path_factory.mktemp("arm64-verify")
    models = [f"--model={name}={path}" for name, path in trained_store.exported.items()]
    log = work / "verify.log"
    with log.open("w") as out:
        done = subprocess.run(
            [sys.executable, "-m", "arm64", "--work", str(work), "verify", *models],
            cwd=REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=3000,
            check=False,
        )
    text = log.read_text()
    print(text[-4000:])
    result: dict[str, Any] = json.loads((work / "verify-arm64.json").read_text())
    result["exit_status"] = done.returncode
    result["log"] = text
    result["markdown"] = (work / "verify-arm64.md").read_text()
    return result


def test_verify_passes_for_every_model_the_tests_train(verified: dict[str, Any]) -> None:
    assert verified["exit_status"] == 0, verified["log"][-3000:]
    assert verified["passed"]
    assert {model["name"]: model["held_out_rows"] for model in verified["models"]} == HELD_OUT_ROWS


def test_the_candidate_really_is_emulated_arm64(verified: dict[str, Any]) -> None:
    candidate, reference = verified["candidate"], verified["reference"]
    assert (candidate["machine"], candidate["emulated"]) == ("aarch64", True)
    assert "emulated by qemu-aarch64" in candidate["label"]
    assert (reference["machine"], reference["emulated"]) == ("x86_64", False)
    # Same locked versions on both sides: the lock, not the architecture, chose them.
    assert candidate["versions"] == reference["versions"]


def test_labels_probabilities_and_values_agree_on_every_row(verified: dict[str, Any]) -> None:
    for model in verified["models"]:
        outputs = model["outputs"]
        assert outputs["passed"], (model["name"], outputs["problems"])
        assert outputs["rows"] == HELD_OUT_ROWS[model["name"]]
        if model["task"] == "classification":
            assert outputs["label_mismatches"] == 0
            assert outputs["max_probability_diff"] <= 1e-6
        else:
            assert outputs["max_value_diff"] <= 1e-9


def test_the_emulated_server_answers_like_the_x86_one(verified: dict[str, Any]) -> None:
    for model in verified["models"]:
        answers = model["answers"]
        assert set(answers) == {
            "ready",
            "predict, one row",
            "predict, every held-out row",
            "OIP infer, every held-out row",
        }
        assert all(answer["same"] for answer in answers.values()), (model["name"], answers)


def test_emulated_inference_time_is_reported_as_emulated(verified: dict[str, Any]) -> None:
    assert "(emulated: an upper bound, not a native figure)" in verified["markdown"]
    for model in verified["models"]:
        times = model["inference_time_ms"]["candidate"]
        assert times["count"] == 200
        assert 0 < times["p50"] <= times["p99"] <= times["max"]


def test_nothing_is_left_running_or_mounted(verified: dict[str, Any], emulated: Emulated) -> None:
    assert verified["leftovers"] == []
    assert leftovers(emulated.root) == []


def test_a_killed_caller_takes_everything_in_the_root_with_it(
    emulated: Emulated, tmp_path: Path
) -> None:
    """SIGKILL leaves no handler to run: the kernel's parent-death signal must do the cleanup."""
    runner = (
        f"Emulated(Path({str(emulated.root)!r}), {emulated.interpreter!r}, "
        f"Path({str(tmp_path)!r}), 'qemu')"
    )
    script = (
        "import subprocess, sys, time\n"
        "from pathlib import Path\n"
        "from arm64.runners import Emulated\n"
        f"command, env = {runner}.python(\n"
        "    ['-c', 'import time; print(\"up\", flush=True); time.sleep(600)'], {})\n"
        "subprocess.Popen(command, env=env)\n"
        "time.sleep(600)\n"
    )
    caller = subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert caller.stdout is not None
        assert caller.stdout.readline().strip() == "up"
        assert any("process" in item for item in leftovers(emulated.root))
    finally:
        caller.kill()
        caller.wait()
    deadline = time.monotonic() + 20
    while leftovers(emulated.root) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert leftovers(emulated.root) == []
