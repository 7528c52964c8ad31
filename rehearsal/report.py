"""One line per workload and check: passed, failed with the reason, or skipped with the reason."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TextIO


@dataclass
class Report:
    """Prints each outcome as it happens and remembers the failures for the exit code."""

    out: TextIO = sys.stdout
    lines: list[tuple[str, str, str]] = field(default_factory=list)

    def _line(self, outcome: str, subject: str, detail: str) -> None:
        self.lines.append((outcome, subject, detail))
        print(f"{outcome:<4}  {subject}: {detail}", file=self.out, flush=True)

    def passed(self, subject: str, detail: str) -> None:
        self._line("PASS", subject, detail)

    def failed(self, subject: str, detail: str) -> None:
        self._line("FAIL", subject, detail)

    def skipped(self, subject: str, detail: str) -> None:
        self._line("SKIP", subject, detail)

    def check(self, ok: bool, subject: str, detail: str) -> bool:
        (self.passed if ok else self.failed)(subject, detail)
        return ok

    @property
    def failures(self) -> list[tuple[str, str, str]]:
        return [line for line in self.lines if line[0] == "FAIL"]

    def summary(self) -> str:
        counts = {
            o: sum(1 for line in self.lines if line[0] == o) for o in ("PASS", "FAIL", "SKIP")
        }
        return f"{counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped"
