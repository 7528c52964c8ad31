"""What recording one prediction costs the server's CPU, split by where it is spent, in process.

Three figures per recorded one-row request, in CPU time (so a busy machine moves them less):
`record()` on the event loop, the writer thread building the rows, and the writer writing them to
an embedded SQLite store. Then the effect on the event loop: a thread standing in for it (busy
Python work of about one request, then a poll that releases the interpreter lock, as asyncio's
does) runs on the same CPU while the writer drains the queue, and its iterations are timed; the
tail of that distribution is how long the writer keeps the loop waiting for the lock.

    python -m loadtest.recording_cpu [--requests 40000] [--cpu 0]
"""

import argparse
import os
import random
import select
import statistics
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import numpy as np

from server.metrics import Metrics
from server.model import Model
from server.recording import Recorder
from server.store import PredictionStore

_ROW = np.asarray([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)
_ANSWER = np.asarray([0], dtype=np.int64)
# What the recorder reads of a model; no onnxruntime session needed.
_MODEL = cast(
    Model,
    SimpleNamespace(
        name="iris-classifier",
        version="3",
        classes=["setosa", "versicolor", "virginica"],
        is_classifier=True,
    ),
)


def _recorder(work: Path, name: str) -> Recorder:
    store = PredictionStore(f"sqlite:///{work / name}")
    return Recorder(store, Metrics(), buffer_rows=10**8, flush_seconds=0.01)


def _fill(recorder: Recorder, requests: int) -> float:
    """Record `requests` one-row predictions with fresh ids; the CPU seconds it took."""
    keys = [[(b"%016x" % random.getrandbits(64), 1)] for _ in range(requests)]
    started = time.process_time()
    for key in keys:
        recorder.record(_MODEL, "champion", _ROW, _ANSWER, key)
    return time.process_time() - started


def split(work: Path, requests: int) -> dict[str, float]:
    """Microseconds of CPU per one-row request: record(), building rows, writing them."""
    recorder = _recorder(work, "split.db")
    record = _fill(recorder, requests)
    build = write = 0.0
    try:
        while recorder.pending_rows:
            started = time.process_time()
            batch, taken = recorder._take()
            built = time.process_time()
            recorder._write(batch)
            write += time.process_time() - built
            build += built - started
            recorder._taken += taken
    finally:
        recorder.close()
    scale = 1e6 / requests
    return {"record": record * scale, "build": build * scale, "write": write * scale}


def _burn(iterations: int) -> int:
    total = 0
    for i in range(iterations):
        total += i * i
    return total


def stall(work: Path, requests: int, busy_iterations: int) -> dict[str, float]:
    """The stand-in event loop's iteration times while the writer drains `requests` rows."""
    recorder = _recorder(work, "stall.db")
    _fill(recorder, requests)
    poller = select.epoll()
    done = threading.Event()
    gaps: list[float] = []

    def loop() -> None:
        last = time.perf_counter()
        while not done.is_set():
            _burn(busy_iterations)
            poller.poll(0)  # asyncio's poll: the lock is released and taken back
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    # Baseline first: the loop alone, no writer.
    thread = threading.Thread(target=loop)
    thread.start()
    time.sleep(0.5)
    done.set()
    thread.join()
    alone = sorted(gaps)
    gaps.clear()
    done.clear()
    thread = threading.Thread(target=loop)
    thread.start()
    started = time.perf_counter()
    recorder.start()
    while recorder.pending_rows:
        time.sleep(0.005)
    drained = time.perf_counter() - started
    done.set()
    thread.join()
    recorder.close()
    poller.close()
    beside = sorted(gaps)
    return {
        "alone_p50_us": _quantile(alone, 0.5) * 1e6,
        "alone_max_us": alone[-1] * 1e6,
        "p50_us": _quantile(beside, 0.5) * 1e6,
        "p99_us": _quantile(beside, 0.99) * 1e6,
        "p999_us": _quantile(beside, 0.999) * 1e6,
        "max_us": beside[-1] * 1e6,
        "drain_rows_per_s": requests / drained,
    }


def _quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtest.recording_cpu", description=__doc__)
    parser.add_argument("--requests", type=int, default=40_000, help="one-row requests recorded")
    parser.add_argument("--repeats", type=int, default=3, help="the split's median of this many")
    parser.add_argument("--cpu", type=int, default=0, help="CPU to pin to; -1: do not pin")
    parser.add_argument(
        "--busy", type=int, default=2000, help="stand-in loop's work per iteration (additions)"
    )
    args = parser.parse_args(argv)
    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})  # every thread started from here on inherits it
    with tempfile.TemporaryDirectory(prefix="recording-cpu-") as directory:
        runs = []
        for repeat in range(args.repeats):
            work = Path(directory) / str(repeat)
            work.mkdir()
            runs.append(split(work, args.requests))
        figures = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        print(
            f"CPU per recorded one-row request, median of {args.repeats} runs of "
            f"{args.requests:,} requests (µs):"
        )
        print(f"  record() on the event loop   {figures['record']:6.2f}")
        print(f"  writer: building rows        {figures['build']:6.2f}")
        print(f"  writer: SQLite write         {figures['write']:6.2f}")
        print(f"  total                        {sum(figures.values()):6.2f}")
        loop = stall(Path(directory), args.requests, args.busy)
    print(
        f"Stand-in event loop beside the writer draining {args.requests:,} rows on one CPU "
        f"(iteration alone: p50 {loop['alone_p50_us']:.0f} µs, max {loop['alone_max_us']:.0f} µs):"
    )
    print(
        f"  iteration p50 {loop['p50_us']:.0f} µs, p99 {loop['p99_us']:.0f} µs, "
        f"p99.9 {loop['p999_us']:.0f} µs, max {loop['max_us']:.0f} µs; "
        f"writer drained {loop['drain_rows_per_s']:,.0f} rows/s"
    )


if __name__ == "__main__":
    main()
