"""The benchmark charts are honest: bars from zero on linear axes, units named, whiskers explained."""

from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from matplotlib.figure import Figure

from loadtest import chart

pytestmark = pytest.mark.unit


def _figures(monkeypatch: pytest.MonkeyPatch) -> list[Figure]:
    kept: list[Figure] = []
    monkeypatch.setattr(plt, "close", kept.append)
    return kept


def test_bars_start_at_zero_on_a_linear_axis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = _figures(monkeypatch)
    http = [("this server", 12000.0, 11000.0, 12500.0), ("other", 3000.0, 2800.0, 3100.0)]
    inproc = [("onnxruntime", 20.0, 19.0, 22.0)]
    chart.bench_chart(http, inproc, "t", tmp_path / "b.png")
    figure = kept[0]
    for axes in figure.axes:
        assert axes.get_xscale() == "linear"
        assert axes.get_xlim()[0] == 0
        assert any(unit in axes.get_xlabel() for unit in ("requests/s", "µs"))
    assert any("whiskers" in text.get_text() for text in figure.texts)
    plt.close(figure)


def test_throughput_is_linear_from_zero_and_every_axis_has_its_unit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = _figures(monkeypatch)
    rows = [
        {"body": "one row", "concurrency": c, "rps": 1000.0 * c, "p50_ms": 1.0, "p95_ms": 2.0,
         "p99_ms": 3.0}
        for c in (1, 16, 64)
    ]  # fmt: skip
    chart.loadtest_chart(rows, "t", tmp_path / "l.png")
    throughput, latency = kept[0].axes
    assert throughput.get_yscale() == "linear"
    assert throughput.get_ylim()[0] == 0
    assert throughput.get_ylabel() == "requests/s"
    assert "ms" in latency.get_ylabel()
    assert all("connections" in axes.get_xlabel() for axes in (throughput, latency))
    plt.close(kept[0])
