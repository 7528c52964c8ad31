"""Promotions and rollbacks from separate processes at the same moment, and what they must leave.

Each command runs as its own `python -m training.lifecycle` process, the way two operators (or an
operator and an automated job) would run `make promote` at once.
"""

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass

from tests.processes import REPO_ROOT

_MOVE = re.compile(r"^production of (?P<name>\S+): version (?P<old>\d+) -> version (?P<new>\d+)")


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str

    @property
    def move(self) -> tuple[str, str]:
        """The (from, to) versions the command says it moved production between."""
        for line in self.out.splitlines():
            found = _MOVE.match(line)
            if found:
                return found["old"], found["new"]
        raise AssertionError(f"no move reported: {self.out!r} {self.err!r}")


def lifecycle_env(tracking_uri: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_TRACKING_URI"] = tracking_uri
    return env


def at_once(tracking_uri: str, commands: list[list[str]], timeout: float = 600) -> list[Outcome]:
    """Start every `python -m training.lifecycle` command before waiting for any of them."""
    env = lifecycle_env(tracking_uri)
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "training.lifecycle", *command],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for command in commands
    ]
    outcomes = []
    for process in processes:
        out, err = process.communicate(timeout=timeout)
        outcomes.append(Outcome(process.returncode, out, err))
    return outcomes


def chain_of(moves: list[tuple[str, str]], start: str) -> list[str]:
    """Order (from, to) moves into the one path they must form when no promotion was lost."""
    remaining = list(moves)
    chain = [start]
    while remaining:
        step = next((move for move in remaining if move[0] == chain[-1]), None)
        assert step is not None, f"moves {moves} do not form one path from version {start}"
        remaining.remove(step)
        chain.append(step[1])
    return chain


def history_of(raw_tag: str | None, alias: str = "production") -> list[str]:
    return [str(v) for v in json.loads(raw_tag or "{}").get(alias, [])]
