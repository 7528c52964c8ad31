"""What recording one prediction costs the server's CPU, split by where it is spent, in process.

Three figures per recorded one-row request, in CPU time (so a busy machine moves them less):
`record()` on the event loop, the writer thread building the rows, and the writer writing them to
an embedded SQLite store; and the bytes written to storage per row. Each with the server's own
request ids (time-ordered) and with random ones, as a client sending UUIDv4s would. Then the
effect on the event loop: a thread standing in for it (busy Python work of about one request,
then a poll that releases the interpreter lock, as asyncio's does) runs on the same CPU while the
writer drains the queue, and its iterations are timed; the tail of that distribution is how long
the writer keeps the loop waiting for the lock. Meanwhile a second connection takes SQLite's
write lock every 20 ms, as a /feedback write does, and the time it waits for the writer is timed.

    python -m loadtest.recording_cpu [--requests 100000] [--cpu 0]
"""

import argparse
import os
import random
import select
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import numpy as np

from loadtest import machine
from server.metrics import Metrics
from server.model import Model
from server.recording import Recorder
from server.request_ids import new_request_id
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


def _random_id() -> bytes:
    """An id as a client might send one: random (UUIDv4-like), not ordered by time."""
    return b"%032x" % random.getrandbits(128)


# Whose ids: the server's own (time-ordered), or random ones a client sent.
IDS: dict[str, Callable[[], bytes]] = {"server's ids": new_request_id, "random ids": _random_id}


def _written_bytes() -> int:
    """Bytes this process has caused to be written to storage (Linux's /proc/self/io)."""
    try:
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _fill(recorder: Recorder, requests: int, make_id: Callable[[], bytes]) -> float:
    """Record `requests` one-row predictions with fresh ids; the CPU seconds it took."""
    keys = [[(make_id(), 1)] for _ in range(requests)]
    started = time.process_time()
    for key in keys:
        recorder.record(_MODEL, "champion", _ROW, _ANSWER, key)
    return time.process_time() - started


def split(work: Path, requests: int, make_id: Callable[[], bytes]) -> dict[str, float]:
    """Microseconds of CPU per one-row request (record(), building rows, writing them), and the
    bytes written to storage per row."""
    recorder = _recorder(work, "split.db")
    record = _fill(recorder, requests, make_id)
    build = write = 0.0
    written = _written_bytes()
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
    return {
        "record": record * scale,
        "build": build * scale,
        "write": write * scale,
        "bytes": (_written_bytes() - written) / requests,
    }


def _burn(iterations: int) -> int:
    total = 0
    for i in range(iterations):
        total += i * i
    return total


def stall(work: Path, requests: int, busy_iterations: int) -> dict[str, float]:
    """The stand-in event loop's iteration times while the writer drains `requests` rows."""
    recorder = _recorder(work, "stall.db")
    _fill(recorder, requests, new_request_id)
    poller = select.epoll()
    done = threading.Event()
    gaps: list[float] = []
    waits: list[float] = []
    first_wait = threading.Event()

    def feedback() -> None:  # another writer to the same database, as /feedback is
        other = sqlite3.connect(work / "stall.db", timeout=60, isolation_level=None)
        while not done.is_set():
            started = time.perf_counter()
            other.execute("BEGIN IMMEDIATE")
            waits.append(time.perf_counter() - started)
            other.execute("COMMIT")
            first_wait.set()
            time.sleep(0.02)
        other.close()

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
    recorder.store.connect().close()  # the database, before the other writer opens it
    thread = threading.Thread(target=loop)
    writer = threading.Thread(target=feedback)
    thread.start()
    writer.start()
    first_wait.wait()  # at least one wait to report, however fast the drain
    started = time.perf_counter()
    recorder.start()
    while recorder.pending_rows:
        time.sleep(0.005)
    drained = time.perf_counter() - started
    done.set()
    thread.join()
    writer.join()
    waits.sort()
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
        "lock_wait_p50_ms": _quantile(waits, 0.5) * 1e3,
        "lock_wait_max_ms": waits[-1] * 1e3,
    }


def _quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(figures: dict[str, dict[str, float]], loop: dict[str, float], requests: int,
           repeats: int) -> list[str]:  # fmt: skip
    """The figures as the lines the command prints (and writes with `--out`)."""
    lines = [
        f"CPU per recorded one-row request, median of {repeats} runs of {requests:,} requests "
        f"(µs), with the {' and with '.join(figures)}:"
    ]
    rows = [
        ("record() on the event loop", "record"),
        ("writer: building rows", "build"),
        ("writer: SQLite write", "write"),
    ]
    for label, key in rows:
        lines.append(f"  {label:<28} " + "  ".join(f"{f[key]:6.2f}" for f in figures.values()))
    totals = (f["record"] + f["build"] + f["write"] for f in figures.values())
    lines.append(f"  {'total':<28} " + "  ".join(f"{t:6.2f}" for t in totals))
    written = (f["bytes"] for f in figures.values())
    lines.append(f"  {'bytes written per row':<28} " + "  ".join(f"{b:6.0f}" for b in written))
    lines += [
        f"Stand-in event loop beside the writer draining {requests:,} rows on one CPU "
        f"(iteration alone: p50 {loop['alone_p50_us']:.0f} µs, max {loop['alone_max_us']:.0f} µs):",
        f"  iteration p50 {loop['p50_us']:.0f} µs, p99 {loop['p99_us']:.0f} µs, "
        f"p99.9 {loop['p999_us']:.0f} µs, max {loop['max_us']:.0f} µs; "
        f"writer drained {loop['drain_rows_per_s']:,.0f} rows/s",
        f"  another writer's wait for SQLite's write lock meanwhile (a /feedback write): "
        f"p50 {loop['lock_wait_p50_ms']:.1f} ms, max {loop['lock_wait_max_ms']:.1f} ms",
    ]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtest.recording_cpu", description=__doc__)
    parser.add_argument("--requests", type=int, default=100_000, help="one-row requests recorded")
    parser.add_argument("--repeats", type=int, default=3, help="the split's median of this many")
    parser.add_argument("--cpu", type=int, default=0, help="CPU to pin to; -1: do not pin")
    parser.add_argument(
        "--busy", type=int, default=2000, help="stand-in loop's work per iteration (additions)"
    )
    parser.add_argument("--out", type=Path, help="also write the figures here, as Markdown")
    args = parser.parse_args(argv)
    described = machine.describe()
    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})  # every thread started from here on inherits it
    with tempfile.TemporaryDirectory(prefix="recording-cpu-") as directory:
        figures: dict[str, dict[str, float]] = {}
        for ids, make_id in IDS.items():
            runs = []
            for repeat in range(args.repeats):
                work = Path(directory) / f"{ids}-{repeat}"
                work.mkdir()
                runs.append(split(work, args.requests, make_id))
            figures[ids] = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        loop = stall(Path(directory), args.requests, args.busy)
    lines = report(figures, loop, args.requests, args.repeats)
    print("\n".join(lines))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            f"`make bench-recording-cpu` on {machine.one_line(described)}:\n\n```\n"
            + "\n".join(lines)
            + "\n```\n"
        )


if __name__ == "__main__":
    main()
