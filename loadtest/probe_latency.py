"""`make bench-probes`: /health latency under the heaviest load the chart allows, per MAX_CONCURRENCY.

Starts this server from the local store once per setting (pinned to one CPU, wrk to another),
floods /predict with the largest batch production accepts from many connections, probes /health
as the kubelet does, and prints one row per setting. Writes probe-latency.json and .md (the
Markdown table) to loadtest/results/. Bounded: settings x (duration + start-up).
"""

import argparse
import itertools
import json
import math
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from loadtest import machine, payloads, servers
from loadtest.probes import TABLE_HEADERS, health_under_load, settings_list, summary_row, table_rows
from loadtest.processes import StartError
from loadtest.table import render
from loadtest.wrk import WrkError

CHART = servers.REPO_ROOT / "charts" / "platform"
DEFAULT_OUT = servers.REPO_ROOT / "loadtest" / "results"


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        return {k: _merge(base.get(k), over[k]) if k in over else base[k] for k in base | over}
    return over


def chart_api_values(*overlays: str) -> dict[str, Any]:
    """The chart's `api` values: values.yaml with the overlays merged over it, as Helm does."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for name in overlays:
        values = _merge(values, yaml.safe_load((CHART / name).read_text()) or {})
    return dict(values["api"])


def server_env(api: dict[str, Any], max_concurrency: int) -> dict[str, str]:
    """The settings the chart gives the server (the model aside), with MAX_CONCURRENCY replaced."""
    server = api["server"]
    return {
        "MAX_BATCH": str(server["maxBatch"]),
        "MAX_BODY_BYTES": str(server["maxBodyBytes"]),
        "MAX_CONCURRENCY": str(max_concurrency),
        "MODEL_POLL_SECONDS": str(api["model"]["pollSeconds"]),
        "DRIFT_WINDOW": str(api["drift"]["window"]),
        "DRIFT_INTERVAL_SECONDS": str(api["drift"]["intervalSeconds"]),
        "LOG_LEVEL": "warning",
    }


def build_parser(production: dict[str, Any]) -> argparse.ArgumentParser:
    default_settings = sorted({0, 4, 8, 16, 32, 64, int(production["server"]["maxConcurrency"])})
    parser = argparse.ArgumentParser(
        prog="make bench-probes / python -m loadtest.probe_latency",
        description="/health latency while /predict is flooded with the largest batches.",
    )
    parser.add_argument(
        "--settings",
        type=settings_list,
        default=default_settings,
        help=f"MAX_CONCURRENCY values to try (default {','.join(map(str, default_settings))})",
    )
    parser.add_argument("--clients", type=int, default=200, help="connections (200)")
    parser.add_argument(
        "--rows",
        type=int,
        default=int(production["server"]["maxBatch"]),
        help="rows per request (default: production's maxBatch)",
    )
    parser.add_argument("--duration", type=float, default=15, help="seconds per run (15)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per setting and client (1)")
    parser.add_argument(
        "--model-uri",
        default=os.environ.get("MODEL_URI", "models:/iris-classifier@production"),
        help="model the server serves from the local store",
    )
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT, help="where results go")
    parser.add_argument("--server-cpu", type=int, default=0, help="CPU for the server (0)")
    parser.add_argument("--client-cpu", type=int, default=1, help="CPU for wrk (1)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the server or wrk")
    parser.add_argument(
        "--clients-kind",
        choices=["polite", "wrk", "both"],
        default="both",
        help="polite clients honour Retry-After; wrk resends at once (default both)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    production = chart_api_values("values-production.yaml")
    args = build_parser(production).parse_args(argv)
    if hint := servers.missing_store():
        print(f"error: {hint}", file=sys.stderr)
        return 2
    liveness_timeout = float(production["probes"]["liveness"]["timeoutSeconds"])
    pin = not args.no_pin and {args.server_cpu, args.client_cpu} <= os.sched_getaffinity(0)
    body = payloads.predict_batch(payloads.IRIS_FEATURES, payloads.IRIS_ROW, args.rows)
    described = machine.describe()
    print(f"{args.clients} clients x {args.rows}-row batches ({len(body):,} bytes), "
          f"{args.duration:g}s per run; liveness timeout {liveness_timeout:g}s")  # fmt: skip
    print(machine.one_line(described), flush=True)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, float | int | str]] = []
    runs: list[dict[str, Any]] = []
    kinds = ["polite", "wrk"] if args.clients_kind == "both" else [args.clients_kind]
    for setting, kind, _ in itertools.product(args.settings, kinds, range(args.repeats)):
        service = servers.model_server(
            args.model_uri,
            args.out_dir,
            args.server_cpu if pin else None,
            server_env(production, setting),
        )
        try:
            service.wait_ready(60)
            run = health_under_load(
                service.url,
                body,
                clients=args.clients,
                seconds=args.duration,
                server_cpu_seconds=service.cpu_seconds,
                polite=kind == "polite",
                cpu=args.client_cpu if pin else None,
            )
        except (StartError, WrkError, subprocess.CalledProcessError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        finally:
            service.stop()
        rows.append(summary_row(setting, kind, run, liveness_timeout))
        probes = [
            [
                round(p.sent, 3),
                *(None if math.isinf(x) else round(x, 4) for x in (p.wall, p.cpu)),
            ]
            for p in [run.onset, *run.probes]
        ]
        runs.append({**rows[-1], "probes_sent_wall_cpu_s": probes})
        print(render(TABLE_HEADERS, table_rows(rows[-1:])).splitlines()[-1], flush=True)
    print()
    print(render(TABLE_HEADERS, table_rows(rows)))
    placement = f" on CPU {args.server_cpu}, the clients on CPU {args.client_cpu}" if pin else ""
    end_load = round(os.getloadavg()[0], 2)
    caption = (
        f"_`make bench-probes`: {args.clients} connections posting {args.rows}-row batches for "
        f"{args.duration:g} s per run, {args.repeats} runs per setting and kind of client (polite: "
        f"after a 503, wait as long as Retry-After asks; wrk: resend at once); /health probed as the "
        f"kubelet does, one probe at a time on a new connection, 0.5 s apart; one server "
        f'process{placement}; {machine.one_line(described)}, {end_load} at the end. "Onset" '
        f"is the probe sent with the load's burst of 200 new connections; the other /health "
        f'columns are the probes that followed, under the sustained load. "CPU ahead" is the '
        f"server's CPU time between a probe's request and its answer: the work queued ahead of "
        f"it, which is the wall time on a node that gives the pod its CPU, while wall time here "
        f'also waits for every other process on the machine. "Over the timeout" counts '
        f"sustained-load probes at or past the liveness timeout ({liveness_timeout:g} s)._"
    )
    (args.out_dir / "probe-latency.md").write_text(
        render(TABLE_HEADERS, table_rows(rows), markdown=True) + "\n\n" + caption + "\n"
    )
    result = {"machine": described, "clients": args.clients, "rows": args.rows,
              "duration_s": args.duration, "pinned": pin, "liveness_timeout_s": liveness_timeout,
              "results": runs}  # fmt: skip
    (args.out_dir / "probe-latency.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out_dir / 'probe-latency.md'} and probe-latency.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
