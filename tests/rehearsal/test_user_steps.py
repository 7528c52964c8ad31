"""The install guide as the rehearsal reads it: its Secrets, its namespace, its first-model steps."""

from __future__ import annotations

import pytest

from rehearsal import user_steps
from rehearsal.manifests import CHART, render
from rehearsal.scenario import ENVIRONMENTS, referenced_secrets
from rehearsal.user_steps import GUIDE, namespaces, secret_commands

GUIDE_TEXT = GUIDE.read_text()
IMAGE_SETS = ["api.image.repository=r", "mlflow.image.repository=m"]


def test_secret_commands_are_parsed_with_their_namespace_and_keys() -> None:
    markdown = """
```bash
kubectl -n platform create secret generic a \\
  --from-literal=user=admin --from-literal=password='<choose one>'
kubectl create secret generic b --namespace=platform --from-literal=k="$(openssl rand -hex 8)"
kubectl -n platform get secret a   # not a creation
```
"""
    commands = secret_commands(markdown)
    assert [(c.namespace, c.name) for c in commands] == [("platform", "a"), ("platform", "b")]
    a = commands[0].materialise()
    assert a["user"] == "admin"
    assert "<" not in a["password"]
    assert len(a["password"]) >= 12  # MLflow's minimum for a password
    assert "$(" not in commands[1].materialise()["k"]


def test_the_guide_uses_one_namespace() -> None:
    assert namespaces(GUIDE_TEXT) == {"platform"}


@pytest.mark.chart
@pytest.mark.parametrize("env", sorted(ENVIRONMENTS))
def test_the_guide_creates_every_secret_each_values_file_refers_to(env: str) -> None:
    created = {c.name: c.literals for c in secret_commands(GUIDE_TEXT)}
    release = render("platform", "platform", [CHART / f for f in ENVIRONMENTS[env]], IMAGE_SETS)
    needed = referenced_secrets(release)
    assert needed
    assert set(needed) <= set(created), f"the guide does not create {set(needed) - set(created)}"


def test_the_guide_holds_the_commands_the_rehearsal_runs() -> None:
    assert f"--set {user_steps.FIRST_INSTALL_SET}" in GUIDE_TEXT
    assert " ".join(user_steps.TRAIN) in GUIDE_TEXT
    promote = " ".join(user_steps.PROMOTE_ALIAS).format(version=1, alias="staging")
    assert promote in GUIDE_TEXT
