"""PNG charts of the results (matplotlib, no display needed)."""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt


def loadtest_chart(results: Sequence[dict[str, Any]], title: str, path: Path) -> Path:
    """Throughput, and p50/p95/p99 latency, against concurrency: one line per request body."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    bodies = sorted({r["body"] for r in results}, key=[r["body"] for r in results].index)
    markers = {"p50_ms": "o", "p95_ms": "s", "p99_ms": "^"}
    for body in bodies:
        rows = sorted((r for r in results if r["body"] == body), key=lambda r: r["concurrency"])
        x = [r["concurrency"] for r in rows]
        left.plot(x, [r["rps"] for r in rows], marker="o", label=body)
        for key, marker in markers.items():
            right.plot(x, [r[key] for r in rows], marker=marker, label=f"{body} {key[:3]}")
    left.set(xlabel="concurrency (connections, log scale)", ylabel="requests/s", title="Throughput")
    left.set_ylim(bottom=0)  # throughput on a linear axis from zero
    right.set(xlabel="concurrency (connections, log scale)", ylabel="latency (ms, log scale)",
              title="Latency percentiles")  # fmt: skip
    right.set_yscale("log")
    levels = sorted({r["concurrency"] for r in results})
    for axes in (left, right):
        axes.set_xscale("log")
        axes.set_xticks(levels, [str(level) for level in levels])
        axes.minorticks_off()
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=8)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def bench_chart(
    http: Sequence[tuple[str, float, float, float]],
    inprocess: Sequence[tuple[str, float, float, float]],
    title: str,
    path: Path,
) -> Path:
    """Bars with min-max whiskers: requests/s per server, and per-call time in process.

    Each item is (label, median, low, high). Bars start at zero on a linear axis, so their lengths
    compare honestly; the whiskers' meaning is written under the chart.
    """
    panels = [(http, "requests/s at concurrency 16 (one row)"), (inprocess, "µs per call")]
    panels = [(items, label) for items, label in panels if items]
    figure, axes_list = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.2), squeeze=False)
    for axes, (items, label) in zip(axes_list[0], panels, strict=True):
        names = [i[0] for i in items]
        medians = [i[1] for i in items]
        errors = [
            [m - i[2] for m, i in zip(medians, items, strict=True)],
            [i[3] - m for m, i in zip(medians, items, strict=True)],
        ]
        axes.barh(names, medians, xerr=errors, capsize=3, color="tab:blue", alpha=0.8)
        axes.set(xlabel=label)
        axes.set_xlim(left=0)
        axes.invert_yaxis()
        axes.grid(True, axis="x", alpha=0.3)
        for y, value in enumerate(medians):
            axes.annotate(
                f"{value:,.0f}" if value >= 100 else f"{value:.3g}",
                (value, y),
                xytext=(4, 6),
                textcoords="offset points",
                fontsize=8,
            )
    figure.suptitle(title, fontsize=9)
    figure.text(0.5, 0.01, "bar: median of the runs; whiskers: the lowest and highest run",
                ha="center", fontsize=8)  # fmt: skip
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
