"""`make bench-recording`: what recording every prediction costs `/predict`, with wrk and hey.

The server runs twice per repeat, pinned to one CPU, wrk on the other: with RECORD_PREDICTIONS
off, and on with the embedded SQLite store (every request recorded: wrk sends no request id, so
each gets a fresh one). Reported per mode: requests per second at concurrency 16, the server's
CPU time per request (the figure that survives a shared machine), p99 latency, resident memory
after the run; for recording on, the rows the store holds afterwards and the rows dropped.
Then, on the same server, a fixed rate well below saturation (hey, `--rate`): the latency a
client sees at a load the server carries, which is what "slows the request path" means there.
Repeats alternate the modes so noise from elsewhere on the machine hits both alike.
"""

import argparse
import json
import re
import sqlite3
import statistics
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

from loadtest import machine, payloads
from loadtest.hey import run_hey
from loadtest.servers import missing_store, model_server
from loadtest.stats import spread
from loadtest.wrk import run_wrk

RESULTS = Path(__file__).resolve().parent / "results"
FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]


def _metric(url: str, name: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:  # noqa: S310 - loopback
        text = response.read().decode()
    total = 0.0
    for match in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.MULTILINE):
        total += float(match.group(1))
    return total


def measure(mode: str, args: argparse.Namespace, work: Path, repeat: int) -> dict[str, Any]:
    store = work / f"predictions-{repeat}.db"
    env = {
        "RECORD_PREDICTIONS": "true" if mode == "on" else "false",
        "PREDICTION_STORE_URI": f"sqlite:///{store}",
        "LOG_LEVEL": "warning",
    }
    logs = work / f"{mode}-{repeat}"
    logs.mkdir()
    service = model_server(args.model_uri, logs, args.server_cpu, env)
    try:
        service.wait_ready(timeout=60)
        body = payloads.predict_single(FEATURES, payloads.example_row(FEATURES))
        url = service.url + "/predict"
        run_wrk(url, body, concurrency=16, duration_s=args.warmup, cpu=args.client_cpu)
        cpu_before = service.cpu_seconds()
        result = run_wrk(url, body, concurrency=16, duration_s=args.duration, cpu=args.client_cpu)
        cpu = service.cpu_seconds() - cpu_before
        # Then at a fixed rate the server carries either way: does a client wait longer?
        cpu_before = service.cpu_seconds()
        steady = run_hey(url, body, rate=args.rate, duration_s=args.duration, cpu=args.client_cpu)
        steady_cpu = service.cpu_seconds() - cpu_before
        rss = service.rss_bytes()
        dropped = _metric(service.url, "predictions_record_dropped_total")
    finally:
        service.stop()
    recorded = 0
    if mode == "on" and store.exists():
        with sqlite3.connect(store) as db:
            recorded = int(db.execute("SELECT COUNT(*) FROM predictions").fetchone()[0])
    return {
        "mode": mode,
        "repeat": repeat,
        "rps": result.rps,
        "requests": result.requests,
        "errors": result.errors,
        "p99_ms": result.p99_ms,
        "cpu_us_per_request": cpu / max(result.requests, 1) * 1e6,
        "steady_rps": steady.rps,
        "steady_p50_ms": steady.p50_ms,
        "steady_p99_ms": steady.p99_ms,
        "steady_errors": steady.errors,
        "steady_cpu_us_per_request": steady_cpu / max(steady.requests, 1) * 1e6,
        "rss_mib": rss / 2**20,
        "recorded_rows": recorded,
        "dropped_rows": dropped,
    }


def summary(runs: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| Recording | /predict c16 | server CPU per request | p99 | RSS after | rows recorded (last run) | dropped |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode in ("off", "on"):
        mine = [r for r in runs if r["mode"] == mode]
        lines.append(
            f"| {mode} | {spread([r['rps'] for r in mine]).text('req/s', 0)} "
            f"| {spread([r['cpu_us_per_request'] for r in mine]).text('µs', 1)} "
            f"| {statistics.median(r['p99_ms'] for r in mine):.2f} ms "
            f"| {max(r['rss_mib'] for r in mine):.1f} MiB "
            f"| {mine[-1]['recorded_rows']:,} of {mine[-1]['requests']:,} measured "
            f"(+ warm-up) | {sum(r['dropped_rows'] for r in mine):.0f} |"
        )
    return lines


def steady_summary(runs: list[dict[str, Any]], rate: float) -> list[str]:
    """The fixed-rate phase: what a client waits at a load the server carries."""
    lines = [
        f"| Recording | achieved of {rate:,.0f} req/s asked | p50 | p99 | server CPU per request "
        "| failed |",
        "|---|---|---|---|---|---|",
    ]
    for mode in ("off", "on"):
        mine = [r for r in runs if r["mode"] == mode]
        lines.append(
            f"| {mode} | {statistics.median(r['steady_rps'] for r in mine):,.0f} req/s "
            f"| {statistics.median(r['steady_p50_ms'] for r in mine):.2f} ms "
            f"| {spread([r['steady_p99_ms'] for r in mine]).text('ms', 2)} "
            f"| {spread([r['steady_cpu_us_per_request'] for r in mine]).text('µs', 1)} "
            f"| {sum(r['steady_errors'] for r in mine)} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench-recording", description=__doc__)
    parser.add_argument("--model-uri", default="models:/iris-classifier@production")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--rate", type=float, default=4000.0,
        help="requests per second of the fixed-rate phase (hey), well below saturation",
    )  # fmt: skip
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    hint = missing_store()
    if hint:
        print(f"error: {hint}", file=sys.stderr)
        return 2
    described = machine.describe()
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-recording-") as tmp:
        for repeat in range(args.repeats):
            for mode in ("off", "on") if repeat % 2 == 0 else ("on", "off"):
                run = measure(mode, args, Path(tmp), repeat)
                runs.append(run)
                print(
                    f"  recording {mode}: {run['rps']:,.0f} req/s, "
                    f"{run['cpu_us_per_request']:.1f} µs CPU/request, p99 {run['p99_ms']:.2f} ms, "
                    f"{run['recorded_rows']:,} rows recorded; at {args.rate:,.0f} req/s "
                    f"p99 {run['steady_p99_ms']:.2f} ms",
                    flush=True,
                )
    heading = (
        f"Measured on {machine.one_line(described)}; {args.repeats} repeats of "
        f"{args.duration:g} s, wrk c16 on CPU {args.client_cpu}, the server on CPU "
        f"{args.server_cpu}; medians (range)."
    )
    steady = (
        f"At a fixed rate (hey, 16 workers, {args.rate:,.0f} req/s in all, {args.duration:g} s "
        "after the saturation run, same server):"
    )
    table = "\n".join(
        [heading, "", "At saturation (wrk):", "", *summary(runs), "", steady, "",
         *steady_summary(runs, args.rate)]
    )  # fmt: skip
    print(table)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "recording.json").write_text(
        json.dumps({"machine": described, "runs": runs}, indent=1)
    )
    (args.out_dir / "recording.md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
