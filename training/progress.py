"""Stage-by-stage progress for the training command: each stage is named as it starts."""

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


class Stage:
    """What a stage found out, printed after its duration (e.g. "version 3")."""

    def __init__(self) -> None:
        self.detail = ""


class Progress:
    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.started = time.perf_counter()

    def line(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    @contextmanager
    def stage(self, label: str) -> Iterator[Stage]:
        """Print `label ...` now, and the stage's duration when it ends."""
        print(f"  {label} ...", end="", file=self.out, flush=True)
        stage = Stage()
        started = time.perf_counter()
        try:
            yield stage
        except BaseException:
            print(" failed", file=self.out, flush=True)  # the error follows on its own line
            raise
        detail = f": {stage.detail}" if stage.detail else ""
        self.line(f" {time.perf_counter() - started:.1f}s{detail}")

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started
