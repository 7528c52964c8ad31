"""Medians of repeated runs, and how far the runs strayed from them."""

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Spread:
    """The median of repeated measurements, their range, and the range relative to the median."""

    median: float
    low: float
    high: float
    runs: list[float]

    @property
    def noise(self) -> float:
        """(max - min) / median: 0.05 means the runs were within 5% of each other."""
        return (self.high - self.low) / self.median if self.median else 0.0

    def text(self, unit: str, digits: int) -> str:
        """`median unit (low to high)`, as the result tables show it."""
        return (
            f"{self.median:,.{digits}f} {unit} ({self.low:,.{digits}f} to {self.high:,.{digits}f})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "noise": round(self.noise, 4)}


def spread(values: Sequence[float]) -> Spread:
    if not values:
        raise ValueError("no measurements")
    return Spread(statistics.median(values), min(values), max(values), list(values))
