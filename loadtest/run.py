"""`make loadtest`: drive /predict with wrk at several concurrencies; print, save JSON, draw a PNG.

With no URL it starts this server itself from the local store (pinned to one CPU, wrk to
another); with a URL (the tunnel, a cluster Service) it drives that, with API_KEY when set.
"""

import argparse
import json
import os
import sys
import tempfile
import urllib.error
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loadtest import chart, machine, payloads, servers
from loadtest.processes import StartError, get, post
from loadtest.table import duration, render
from loadtest.wrk import WrkError, run_wrk

DEFAULT_OUT = servers.REPO_ROOT / "loadtest" / "results"


def env_default(name: str, fallback: str) -> str:
    return os.environ.get(name, "").strip() or fallback


def concurrency_list(text: str) -> list[int]:
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 1,16,64: {text!r}") from None
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError(f"concurrency levels must be at least 1: {text!r}")
    return levels


def pinning(
    local: bool, no_pin: bool, server_cpu: int, client_cpu: int
) -> tuple[int | None, int | None]:
    """(server CPU, client CPU), or Nones when pinning is off, remote, or there is one CPU."""
    if no_pin or not local:
        return None, None
    available = os.sched_getaffinity(0)
    if server_cpu == client_cpu or not {server_cpu, client_cpu} <= available:
        print(f"note: CPUs {server_cpu} and {client_cpu} are not both available; not pinning")
        return None, None
    return server_cpu, client_cpu


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="make loadtest / python -m loadtest.run",
        description="Load test POST /predict with wrk at several concurrencies.",
    )
    parser.add_argument(
        "--url",
        default=env_default("URL", ""),
        help="server to drive (default: start one from the local store)",
    )
    parser.add_argument(
        "--model-uri",
        default=env_default("MODEL_URI", "models:/iris-classifier@production"),
        help="model the local server serves (ignored with --url)",
    )
    parser.add_argument(
        "--concurrency",
        type=concurrency_list,
        default=concurrency_list(env_default("LOADTEST_CONCURRENCY", "1,16,64,100")),
        help="comma-separated connection counts (default 1,16,64,100)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=float(env_default("LOADTEST_DURATION", "10")),
        help="measured seconds per level (whole seconds, default 10)",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=float(env_default("LOADTEST_WARMUP", "2")),
        help="unmeasured seconds before each level (0 = none, default 2)",
    )
    parser.add_argument(
        "--bodies",
        default="single,batch",
        help="request bodies: single, batch, or both (default single,batch)",
    )
    parser.add_argument("--batch-rows", type=int, default=100, help="rows in a batch body (100)")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("API_KEY", ""),
        help="sent as Authorization: Bearer (default: $API_KEY)",
    )
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT, help="where JSON and PNG go")
    parser.add_argument("--server-cpu", type=int, default=0, help="CPU for the local server (0)")
    parser.add_argument("--client-cpu", type=int, default=1, help="CPU for wrk (1)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin server or wrk")
    parser.add_argument("--timeout", type=float, default=2.0, help="wrk's per-request timeout, s")
    return parser


def model_features(url: str, headers: dict[str, str]) -> list[str]:
    """The served model's feature names from /model/info (iris's when it cannot be read)."""
    try:
        info = json.loads(get(url + "/model/info", timeout=10, headers=headers))
        features = info.get("features")
        if isinstance(features, list) and features:
            return [str(f) for f in features]
    except (urllib.error.URLError, OSError, ValueError):
        pass
    print("note: /model/info did not list features; sending iris rows")
    return list(payloads.IRIS_FEATURES)


def bodies_for(
    names: Sequence[str], features: Sequence[str], batch_rows: int
) -> dict[str, tuple[bytes, int]]:
    row = payloads.example_row(features)
    known = {
        "single": (payloads.predict_single(features, row), 1),
        "batch": (payloads.predict_batch(features, row, batch_rows), batch_rows),
    }
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"error: unknown body {unknown[0]!r}; choose single and/or batch")
    return {name: known[name] for name in names}


def check_answers(
    endpoint: str, bodies: dict[str, tuple[bytes, int]], headers: dict[str, str]
) -> None:
    """One request per body before any load, so a wrong URL or key fails with its reason."""
    for name, (body, _) in bodies.items():
        try:
            json.loads(post(endpoint, body, headers))
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode(errors="replace")
            raise SystemExit(
                f"error: POST {endpoint} ({name}) answered {exc.code}: {detail}"
            ) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise SystemExit(f"error: POST {endpoint} ({name}) failed: {exc}") from None


def drive(
    endpoint: str,
    bodies: dict[str, tuple[bytes, int]],
    levels: Sequence[int],
    *,
    duration_s: float,
    warmup_s: float,
    headers: dict[str, str],
    cpu: int | None,
    timeout_s: float,
) -> list[dict[str, Any]]:
    results = []
    for name, (body, rows) in bodies.items():
        for level in levels:
            if warmup_s > 0:
                run_wrk(
                    endpoint,
                    body,
                    concurrency=level,
                    duration_s=warmup_s,
                    headers=headers,
                    cpu=cpu,
                    timeout_s=timeout_s,
                )
            result = run_wrk(
                endpoint,
                body,
                concurrency=level,
                duration_s=duration_s,
                headers=headers,
                cpu=cpu,
                timeout_s=timeout_s,
            )
            row = {"body": name, "rows_per_request": rows, **result.to_dict()}
            results.append(row)
            print(
                f"  {name:<6} c={level:<4} {result.rps:>9,.0f} req/s  p99 {duration(result.p99_ms)}",
                flush=True,
            )
    return results


def results_table(results: Sequence[dict[str, Any]], markdown: bool = False) -> str:
    headers = ["Body", "Concurrency", "Throughput", "p50", "p95", "p99", "Errors"]
    rows = []
    for r in results:
        share = 100 * r["errors"] / r["requests"] if r["requests"] else 0.0
        body = "1 row" if r["rows_per_request"] == 1 else f"{r['rows_per_request']} rows"
        rows.append(
            [
                body,
                str(r["concurrency"]),
                f"{r['rps']:,.0f} req/s",
                duration(r["p50_ms"]),
                duration(r["p95_ms"]),
                duration(r["p99_ms"]),
                f"{r['errors']} ({share:.2g}%)" if r["errors"] else "0",
            ]
        )
    return render(headers, rows, markdown=markdown)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    local = not args.url
    server_cpu, client_cpu = pinning(local, args.no_pin, args.server_cpu, args.client_cpu)
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    names = [n.strip() for n in args.bodies.split(",") if n.strip()]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    about = machine.describe()
    with tempfile.TemporaryDirectory(prefix="loadtest-logs-") as logs:
        service = None
        if local:
            hint = servers.missing_store()
            if hint and not Path(args.model_uri.removeprefix("file://")).is_dir():
                print(f"error: {hint}", file=sys.stderr)
                return 1
            service = servers.model_server(args.model_uri, Path(logs), server_cpu)
            try:
                service.wait_ready(timeout=120)
            except StartError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
            url = service.url
        else:
            url = args.url.rstrip("/")
        try:
            endpoint = url + "/predict"
            features = model_features(url, headers)
            bodies = bodies_for(names, features, args.batch_rows)
            check_answers(endpoint, bodies, headers)
            target = f"this server ({args.model_uri}), started locally" if local else url
            pins = (
                f"server on CPU {server_cpu}, wrk on CPU {client_cpu}"
                if server_cpu is not None
                else "not pinned"
            )
            print(
                f"load test of {target}: {pins}; {args.duration:g}s per level after "
                f"{args.warmup:g}s warm-up",
                flush=True,
            )
            results = drive(
                endpoint,
                bodies,
                args.concurrency,
                duration_s=args.duration,
                warmup_s=args.warmup,
                headers=headers,
                cpu=client_cpu,
                timeout_s=args.timeout,
            )
        except WrkError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        finally:
            if service is not None:
                service.stop()
    report = {
        "kind": "loadtest",
        "machine": about,
        "config": {
            "url": "local" if local else url,
            "model_uri": args.model_uri if local else None,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "concurrency": args.concurrency,
            "bodies": names,
            "batch_rows": args.batch_rows,
            "server_cpu": server_cpu,
            "client_cpu": client_cpu,
            "load_generator": "wrk, 1 thread",
        },
        "results": results,
    }
    json_path = args.out_dir / "loadtest.json"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    png_path = chart.loadtest_chart(
        results, f"POST /predict, {machine.one_line(about)}", args.out_dir / "loadtest.png"
    )
    print()
    print(results_table(results))
    print(f"\nmachine: {machine.one_line(about)}")
    print(f"wrote {json_path} and {png_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
