"""Spending by AWS service over the last 30 days against the 30 days before (Cost Explorer)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

WINDOW = dt.timedelta(days=30)
METRIC = "UnblendedCost"
# Services below this in both windows are counted, not listed.
NOTEWORTHY = 0.01


@dataclass(frozen=True)
class ServiceSpend:
    service: str
    previous: float
    last: float

    @property
    def change(self) -> str:
        if self.previous == 0:
            return "new" if self.last else "-"
        return f"{(self.last - self.previous) / self.previous:+.0%}"


def windows(today: dt.date) -> tuple[tuple[dt.date, dt.date], tuple[dt.date, dt.date]]:
    """(previous, last): two 30-day windows ending yesterday (Cost Explorer's End is exclusive)."""
    last = (today - WINDOW, today)
    previous = (today - 2 * WINDOW, today - WINDOW)
    return previous, last


def _pages(ce: Any, start: dt.date, end: dt.date) -> Iterator[dict[str, Any]]:
    token = None
    while True:
        request: dict[str, Any] = {
            "TimePeriod": {"Start": start.isoformat(), "End": end.isoformat()},
            "Granularity": "MONTHLY",
            "Metrics": [METRIC],
            "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"}],
        }
        if token:
            request["NextPageToken"] = token
        page = ce.get_cost_and_usage(**request)
        yield page
        token = page.get("NextPageToken")
        if not token:
            return


def spend_by_service(ce: Any, start: dt.date, end: dt.date) -> tuple[dict[str, float], str]:
    """Cost per service over [start, end), and its unit. Each call costs USD 0.01."""
    totals: dict[str, float] = defaultdict(float)
    unit = "USD"
    for page in _pages(ce, start, end):
        for period in page.get("ResultsByTime", []):
            for group in period.get("Groups", []):
                amount = group["Metrics"][METRIC]
                totals[group["Keys"][0]] += float(amount["Amount"])
                unit = amount.get("Unit", unit)
    return dict(totals), unit


def compare(previous: dict[str, float], last: dict[str, float]) -> list[ServiceSpend]:
    """Every service of either window, the most expensive in the last window first."""
    services = set(previous) | set(last)
    rows = [ServiceSpend(s, previous.get(s, 0.0), last.get(s, 0.0)) for s in services]
    return sorted(rows, key=lambda r: (-r.last, -r.previous, r.service))


def report(ce: Any, today: dt.date) -> str:
    """The Markdown section: a table of services, with totals."""
    (p_start, p_end), (l_start, l_end) = windows(today)
    previous, unit = spend_by_service(ce, p_start, p_end)
    last, unit = spend_by_service(ce, l_start, l_end)
    rows = compare(previous, last)
    shown = [r for r in rows if max(r.previous, r.last) >= NOTEWORTHY]
    total = ServiceSpend("Total", sum(previous.values()), sum(last.values()))
    lines = [
        "### AWS spending by service",
        "",
        f"Last 30 days ({l_start} to {l_end - dt.timedelta(days=1)}) against the 30 days before "
        f"({p_start} to {p_end - dt.timedelta(days=1)}), {METRIC} in {unit}.",
        "",
        "| Service | 30 days before | Last 30 days | Change |",
        "| --- | ---: | ---: | ---: |",
    ]
    for r in [*shown, total]:
        name = f"**{r.service}**" if r is total else r.service
        lines.append(f"| {name} | {r.previous:,.2f} | {r.last:,.2f} | {r.change} |")
    if len(rows) > len(shown):
        lines.append(f"\n{len(rows) - len(shown)} more services cost under {NOTEWORTHY} in both.")
    return "\n".join(lines) + "\n\n"
