"""How much drift detection costs a request, at window sizes from 100 to 100,000 rows.

The request path only copies rows into a ring buffer, so the cost should not grow with the
window; the PSI computation runs every DRIFT_INTERVAL_SECONDS off the request path and does.
Run: `make bench-drift`.
"""

import statistics
import time

import numpy as np

from server.drift import DriftMonitor
from training.datasets import load_dataset
from training.drift_reference import build_reference

WINDOWS = (100, 1_000, 10_000, 100_000)
CALLS = 20_000


def per_call_us(function: object, calls: int, repeats: int = 5) -> tuple[float, float, float]:
    """Median, min and max over repeats of the mean time of one call, in microseconds."""
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            function()  # type: ignore[operator]
        samples.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(samples), min(samples), max(samples)


def main() -> None:
    iris = load_dataset("iris")
    reference = build_reference(iris, iris.X, iris.y)
    row = iris.X[:1]
    label = np.zeros(1)
    print(f"{'window':>8}  {'record 1 row (µs)':>24}  {'report (ms)':>12}")
    for window in WINDOWS:
        monitor = DriftMonitor.for_model(reference, iris.features, window, "1")
        assert monitor is not None
        record = per_call_us(lambda m=monitor: m.record(row, label), CALLS)
        for _ in range(0, window, 150):  # fill the window before timing the report
            monitor.record(iris.X, iris.y.astype(np.float64))
        report = per_call_us(monitor.report, 20)
        print(
            f"{window:>8}  {record[0]:>8.2f} (min {record[1]:.2f}, max {record[2]:.2f})"
            f"  {report[0] / 1000:>12.2f}"
        )


if __name__ == "__main__":
    main()
