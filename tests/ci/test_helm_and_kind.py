"""The workflows' Helm, and the wiring of `make kind-up`/`make kind-down`, which cannot run here.

Every workflow installs the Helm version the chart tools pin, and every helm command in the
workflows, the deploy action and the kind script uses only flags that version lists (Helm 4
renamed --atomic to --rollback-on-failure). The kind values file is valid, renders, and names the
images the script builds; every Secret it refers to is created by the script.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from rehearsal.manifests import parse
from rehearsal.scenario import referenced_secrets
from rehearsal.user_steps import script_commands, secret_commands

ROOT = Path(__file__).resolve().parents[2]
HELM = ROOT / ".tools" / "bin" / "helm"
CHART = ROOT / "charts" / "platform"
KIND_UP = ROOT / "scripts" / "kind-up.sh"
KIND_DOWN = ROOT / "scripts" / "kind-down.sh"
KIND_VALUES = CHART / "ci" / "kind-values.yaml"
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
DEPLOY_ACTION = ROOT / ".github" / "actions" / "helm-deploy" / "action.yml"


def pinned_helm() -> str:
    text = (ROOT / "scripts" / "install-chart-tools.sh").read_text()
    match = re.search(r'^HELM_VERSION="(v[\d.]+)"', text, flags=re.MULTILINE)
    assert match, "install-chart-tools.sh pins no HELM_VERSION"
    return match.group(1)


@pytest.fixture(scope="module", autouse=True)
def chart_tools() -> None:
    subprocess.run([str(ROOT / "scripts" / "install-chart-tools.sh")], check=True)


def _steps(path: Path) -> list[dict[str, Any]]:
    loaded = yaml.safe_load(path.read_text())
    if "runs" in loaded:
        return list(loaded["runs"]["steps"])
    return [step for job in loaded["jobs"].values() for step in job.get("steps", [])]


def test_every_workflow_installs_the_pinned_helm() -> None:
    found = 0
    for path in WORKFLOWS:
        for step in _steps(path):
            if str(step.get("uses", "")).startswith("azure/setup-helm@"):
                found += 1
                assert (step.get("with") or {}).get("version") == pinned_helm(), path.name
    assert found >= 3


def helm_commands() -> list[tuple[str, list[str]]]:
    """(where, words) of every helm command in the workflows, the deploy action and kind-up.sh."""
    scripts = [(p.name, s.get("run", "")) for p in [*WORKFLOWS, DEPLOY_ACTION] for s in _steps(p)]
    scripts.append((KIND_UP.name, KIND_UP.read_text()))
    found = []
    for where, script in scripts:
        for words in script_commands(script):
            for i, word in enumerate(words):
                if word in ("helm", '"$HELM"', "$HELM") and i + 1 < len(words):
                    found.append((where, words[i:]))
    return found


@cache
def helm_help(subcommand: str) -> str:
    done = subprocess.run([str(HELM), subcommand, "--help"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_helm_commands_use_only_flags_the_pinned_helm_has() -> None:
    commands = helm_commands()
    assert {words[1] for _, words in commands} >= {"upgrade", "test", "rollback"}
    for where, words in commands:
        listed = set(re.findall(r"(--[a-z-]+)", helm_help(words[1])))
        for word in words[2:]:
            if word.startswith("--"):
                flag = word.split("=", 1)[0]
                assert flag in listed, f"{where}: helm {words[1]} {flag} is not in {pinned_helm()}"


def test_upgrades_roll_back_on_failure_with_helm_4s_flag() -> None:
    upgrades = [(w, words) for w, words in helm_commands() if words[1] == "upgrade"]
    deploy = [words for w, words in upgrades if w == "action.yml"]
    assert deploy, "the deploy action runs no helm upgrade"
    assert "--rollback-on-failure" in deploy[0]
    assert all("--atomic" not in words for _, words in upgrades)
    # the cluster tests drive the same pinned Helm
    assert '"--atomic"' not in (ROOT / "tests" / "cluster" / "test_model_rollout.py").read_text()


# --- make kind-up / kind-down --------------------------------------------------------------------


def test_make_targets_run_the_kind_scripts() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^kind-up:.*## .+\n\tscripts/kind-up.sh$", makefile, flags=re.MULTILINE)
    assert re.search(r"^kind-down:.*## .+\n\tscripts/kind-down.sh$", makefile, flags=re.MULTILINE)


def test_the_cluster_workflow_runs_the_same_targets() -> None:
    steps = _steps(ROOT / ".github" / "workflows" / "cluster.yml")
    runs = [s.get("run", "").strip() for s in steps]
    assert "make kind-up" in runs
    down = next(s for s in steps if s.get("run", "").strip() == "make kind-down")
    assert down.get("if") == "always()"
    kind = next(s for s in steps if str(s.get("uses", "")).startswith("helm/kind-action@"))
    assert kind["with"]["install_only"] is True  # kind-up.sh creates the cluster itself


def test_kind_scripts_pass_shellcheck() -> None:
    shellcheck = ROOT / ".venv" / "bin" / "shellcheck"
    done = subprocess.run(
        [str(shellcheck), str(KIND_UP), str(KIND_DOWN)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def script_value(name: str) -> str:
    match = re.search(rf'^{name}="([^"]*)"', KIND_UP.read_text(), flags=re.MULTILINE)
    assert match, f"kind-up.sh sets no {name}"
    return match.group(1)


def test_kind_builds_on_the_published_base() -> None:
    dockerfile_base = re.search(r"^ARG BASE_IMAGE=(\S+)", (ROOT / "Dockerfile").read_text(), re.M)
    assert dockerfile_base
    assert script_value("BASE_IMAGE") == f"${{BASE_IMAGE:-{dockerfile_base.group(1)}}}"


def kind_render() -> list[dict[str, Any]]:
    done = subprocess.run(
        [str(HELM), "template", "platform", str(CHART), "--namespace", "platform",
         "--values", str(KIND_VALUES)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    release = parse(done.stdout, "platform")
    return [*release.objects, *release.hooks]


def test_kind_values_are_valid_and_render_alone() -> None:
    schema = yaml.safe_load((CHART / "values.schema.json").read_text())
    base = yaml.safe_load((CHART / "values.yaml").read_text())
    over = yaml.safe_load(KIND_VALUES.read_text())

    def merge(a: Any, b: Any) -> Any:
        if isinstance(a, dict) and isinstance(b, dict):
            return {k: merge(a.get(k), b[k]) if k in b else a[k] for k in a | b}
        return b

    jsonschema.validate(merge(base, over), schema)
    assert kind_render()


def test_kind_values_name_the_images_the_script_builds_and_loads() -> None:
    images = {
        c["image"]
        for o in kind_render()
        if o["kind"] in ("Deployment", "Pod")
        for c in (o["spec"]["template"]["spec"] if o["kind"] == "Deployment" else o["spec"])[
            "containers"
        ]
    }
    locked = re.search(r'\nname = "mlflow"\nversion = "([^"]+)"', (ROOT / "uv.lock").read_text())
    assert locked
    api = script_value("API_IMAGE")
    mlflow = script_value("MLFLOW_IMAGE").replace("${MLFLOW_VERSION}", locked.group(1))
    assert {api, mlflow} <= images
    load = next(
        w for w in script_commands(KIND_UP.read_text()) if w[:3] == ["kind", "load", "docker-image"]
    )
    assert {"$API_IMAGE", "$MLFLOW_IMAGE"} <= set(load)


def test_kind_up_creates_every_secret_the_kind_values_refer_to() -> None:
    from rehearsal.manifests import Release

    objects = kind_render()
    release = Release(
        "platform",
        [o for o in objects if o["kind"] != "Pod"],
        [o for o in objects if o["kind"] == "Pod"],
    )
    needed = set(referenced_secrets(release))
    created = {c.name for c in secret_commands(KIND_UP.read_text(), script=True)}
    assert needed, "the kind values refer to no Secret: the test would prove nothing"
    assert needed <= created, f"kind-up.sh does not create {sorted(needed - created)}"


def test_kind_up_follows_the_guide() -> None:
    """MLflow first (the API left out), two model versions, the API, helm test, cluster tests."""
    commands = [" ".join(words) for words in script_commands(KIND_UP.read_text())]
    helm = [w for where, w in helm_commands() if where == KIND_UP.name]
    first = next(i for i, c in enumerate(commands) if "--set api.enabled=false" in c)
    trains = [i for i, c in enumerate(commands) if c == "make train"]
    full = max(i for i, c in enumerate(commands) if "upgrade --install" in c)
    assert len(trains) == 2
    assert first < trains[0] < full
    assert [w[1] for w in helm] == ["upgrade", "upgrade", "test"]
    assert any(c.startswith("make cluster-test") for c in commands[full:])
