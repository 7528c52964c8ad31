"""What a user supplies besides the chart, taken from the install guide itself.

The Secrets are read from the guide's `kubectl create secret generic` commands (placeholders such
as `'<choose one>'` and command substitutions get generated values), so a Secret the guide forgets
to create is missing here too. The first-model commands are the guide's, run verbatim with `make`.
"""

from __future__ import annotations

import re
import secrets
import shlex
from dataclasses import dataclass
from pathlib import Path

from rehearsal.manifests import ROOT

GUIDE = ROOT / "docs" / "kubernetes.md"
_PLACEHOLDER = re.compile(r"<[^<>]+>|\$\([^)]*\)")

# The guide's first install leaves the API out until the registry has a model.
FIRST_INSTALL_SET = "api.enabled=false"
# The guide's commands for the first model, run against a port-forward to the release's MLflow.
TRAIN = ("make", "train")
PROMOTE_ALIAS = ("make", "promote", "VERSION={version}", "ALIAS={alias}")


@dataclass(frozen=True)
class SecretCommand:
    """One `kubectl create secret generic` of the guide."""

    namespace: str | None
    name: str
    literals: dict[str, str]  # key -> value as written (placeholders included)

    def materialise(self) -> dict[str, str]:
        """The Secret's data with each placeholder replaced by a fresh random value."""
        return {
            key: _PLACEHOLDER.sub(lambda _: secrets.token_hex(16), value)
            for key, value in self.literals.items()
        }


def shell_commands(markdown: str) -> list[list[str]]:
    """Every command in the guide's ```bash blocks, continuations joined, comments dropped."""
    commands: list[list[str]] = []
    for block in re.findall(r"```(?:bash|sh)\n(.*?)```", markdown, flags=re.DOTALL):
        commands += script_commands(block)
    return commands


def script_commands(script: str) -> list[list[str]]:
    """Every command of a shell script, continuations joined, comments dropped."""
    commands: list[list[str]] = []
    joined = re.sub(r"\\\n\s*", " ", script)
    for line in joined.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            words = shlex.split(stripped, comments=True)
        except ValueError:
            continue
        if words:
            commands.append(words)
    return commands


def secret_commands(markdown: str, script: bool = False) -> list[SecretCommand]:
    """The `kubectl ... create secret generic NAME --from-literal=k=v ...` commands of the guide
    (or, with script=True, of a shell script)."""
    found = []
    for words in script_commands(markdown) if script else shell_commands(markdown):
        if words[0] != "kubectl" or words[1:] == []:
            continue
        rest = words[1:]
        namespace = None
        plain: list[str] = []
        literals: dict[str, str] = {}
        i = 0
        while i < len(rest):
            word = rest[i]
            if word in ("-n", "--namespace"):
                namespace = rest[i + 1]
                i += 2
                continue
            if word.startswith("--namespace="):
                namespace = word.split("=", 1)[1]
            elif word.startswith("--from-literal="):
                key, _, value = word.removeprefix("--from-literal=").partition("=")
                literals[key] = value
            elif word == "--from-literal":
                key, _, value = rest[i + 1].partition("=")
                literals[key] = value
                i += 1
            else:
                plain.append(word)
            i += 1
        if plain[:3] == ["create", "secret", "generic"] and len(plain) >= 4:
            found.append(SecretCommand(namespace, plain[3], literals))
    return found


def namespaces(markdown: str) -> set[str]:
    """Every namespace the guide's kubectl and helm commands name."""
    names: set[str] = set()
    for words in shell_commands(markdown):
        if words[0] not in ("kubectl", "helm"):
            continue
        for i, word in enumerate(words):
            if word in ("-n", "--namespace") and i + 1 < len(words):
                names.add(words[i + 1])
            elif word.startswith("--namespace="):
                names.add(word.split("=", 1)[1])
        if words[1:3] == ["create", "namespace"]:
            names.add(words[3])
    return names


def guide_secrets(path: Path = GUIDE) -> dict[str, dict[str, str]]:
    """Secret name -> data, as the guide's commands would create them."""
    return {c.name: c.materialise() for c in secret_commands(path.read_text())}
