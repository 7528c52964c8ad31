"""`python -m arm64 bench`: the figures the sub-millisecond claim is judged by, on this machine.

In process: the server's own inference time (what /predict reports as inference_time_ms) for one
row, over many calls, as p50 and p99. Over HTTP: /predict with one row at concurrency 1 and 16
(wrk, one thread, on its own CPU; the server, one worker, pinned to another), as p50 and p99.
The claim holds when the in-process p99 and the /predict p50 at concurrency 1 are both under
1 ms. Writes JSON and Markdown, and appends the Markdown to the GitHub job summary when there
is one ($GITHUB_STEP_SUMMARY).
"""

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

from arm64.report import latency_summary
from loadtest import machine, payloads, servers
from loadtest.table import duration, render
from loadtest.wrk import run_wrk

CLAIM_MS = 1.0
CONCURRENCY = (1, 16)


def inprocess(model_dir: Path, calls: int, warmup: int) -> dict[str, float]:
    """The server's inference time for one row (ms), `calls` times after `warmup` calls."""
    from server.model import Origin, load_model
    from server.registry import read_model_dir

    model = load_model(read_model_dir(model_dir), Origin(str(model_dir), "local", "bench"))
    row = model.example_rows()[:1]
    for _ in range(warmup):
        model.predict(row)
    return latency_summary([model.predict(row).seconds * 1000 for _ in range(calls)])


def over_http(model_dir: Path, args: argparse.Namespace, logs: Path) -> list[dict[str, Any]]:
    """/predict with one row at each concurrency: wrk's p50 and p99 (ms) and throughput."""
    from loadtest.run import pinning  # imports matplotlib: only where wrk is driven

    server_cpu, client_cpu = pinning(True, args.no_pin, 0, 1)
    service = servers.model_server(str(model_dir), logs, server_cpu, {"MODEL_POLL_SECONDS": "0"})
    try:
        service.wait_ready(timeout=120)
        metadata = json.loads((model_dir / "metadata.json").read_text())
        features = metadata["features"]
        body = payloads.predict_single(features, payloads.example_row(features))
        results = []
        for level in CONCURRENCY:
            endpoint = service.url + "/predict"
            run_wrk(endpoint, body, concurrency=level, duration_s=args.warmup, cpu=client_cpu)
            result = run_wrk(
                endpoint, body, concurrency=level, duration_s=args.duration, cpu=client_cpu
            )
            results.append(result.to_dict())
    finally:
        service.stop()
    return results


def judge(inference: dict[str, float], predict: list[dict[str, Any]]) -> dict[str, Any]:
    """The claim: in-server inference p99 (one row) and /predict p50 at concurrency 1 < 1 ms."""
    c1 = next(run for run in predict if run["concurrency"] == 1)
    return {
        "inference_p99_ms": inference["p99"],
        "predict_c1_p50_ms": c1["p50_ms"],
        "holds": inference["p99"] < CLAIM_MS and c1["p50_ms"] < CLAIM_MS and not c1["errors"],
    }


def markdown(report: dict[str, Any]) -> str:
    inference = report["inference_ms"]
    rows = [
        [
            "in-server inference, 1 row (in process)",
            f"{inference['count']:,} calls",
            duration(inference["p50"]),
            duration(inference["p99"]),
            "",
        ]
    ]
    for run in report["predict"]:
        rows.append(
            [
                f"/predict, 1 row, concurrency {run['concurrency']}",
                f"{run['requests']:,} requests ({run['rps']:,.0f}/s)",
                duration(run["p50_ms"]),
                duration(run["p99_ms"]),
                f"{run['errors']} errors" if run["errors"] else "",
            ]
        )
    claim = report["claim"]
    verdict = "holds" if claim["holds"] else "does NOT hold"
    return (
        f"Sub-millisecond claim on {report['machine']['cpu']} ({report['architecture']}): "
        f"**{verdict}** (in-server inference p99 {duration(claim['inference_p99_ms'])}, "
        f"/predict p50 at concurrency 1 {duration(claim['predict_c1_p50_ms'])}; both must be "
        f"under 1 ms). `{report['command']}` on {machine.one_line(report['machine'])}.\n\n"
        + render(["Figure", "Sample", "p50", "p99", ""], rows, markdown=True)
        + "\n"
    )


def run(args: argparse.Namespace) -> int:
    model_dir: Path = args.model.resolve()
    about = machine.describe()
    print(f"in process: {args.calls:,} one-row calls of the server's model", flush=True)
    inference = inprocess(model_dir, args.calls, warmup=1000)
    with tempfile.TemporaryDirectory(prefix="arm64-bench-") as logs:
        predict = over_http(model_dir, args, Path(logs))
    claim = judge(inference, predict)
    report = {
        "kind": "arm64-bench",
        "command": "make arm64-bench",
        "architecture": platform.machine(),
        "machine": about,
        "model": str(model_dir.name),
        "inference_ms": inference,
        "predict": predict,
        "claim": claim,
    }
    out: Path = args.out or args.work / "bench-native"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    out.with_suffix(".md").write_text(text)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a") as handle:
            handle.write(f"### arm64 latency\n\n{text}\n")
    print(text)
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return 1 if args.fail_on_missed and not claim["holds"] else 0


def add_commands(commands: Any, default_out: Path, default_model: Path) -> None:
    sub = commands.add_parser("bench", help="in-server inference and /predict p50/p99 here")
    sub.add_argument(
        "--model", type=Path, default=default_model, help="an exported model directory"
    )
    sub.add_argument("--calls", type=int, default=20_000, help="in-process calls timed (20000)")
    sub.add_argument("--duration", type=float, default=10, help="seconds per wrk run (10)")
    sub.add_argument("--warmup", type=float, default=2, help="unmeasured seconds before each (2)")
    sub.add_argument("--no-pin", action="store_true", help="do not pin the server and wrk")
    sub.add_argument(
        "--out", type=Path, default=None, help="JSON and Markdown, no suffix (WORK/bench-native)"
    )
    sub.add_argument(
        "--fail-on-missed", action="store_true", help="exit 1 when the claim does not hold"
    )
    sub.set_defaults(run=run)
