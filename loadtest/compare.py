"""`make bench-compare BEFORE=<older checkout>`: the request path of two checkouts, side by side.

For a change to the request path: each round starts the server of this checkout and the one in
BEFORE (another copy of this repository, e.g. `git worktree add /tmp/before <commit>`, run with
this checkout's Python), one after the other, each pinned to one CPU with wrk on the other, and
measures `/predict` and OIP infer with one row at concurrency 16: throughput, and the server's CPU
time per request, the figure that moves least when other work shares the machine. Rounds
alternate which server goes first; the table gives medians (range) and the change in percent.

    python -m loadtest.compare --before /tmp/before [--rounds 6] [--out FILE]
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from loadtest import machine, payloads
from loadtest.servers import REPO_ROOT, missing_store, model_server
from loadtest.stats import spread
from loadtest.wrk import run_wrk

FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
_ROW = payloads.example_row(FEATURES)
# name -> (path, body): one row each.
ROUTES = {
    "/predict": ("/predict", payloads.predict_single(FEATURES, _ROW)),
    "OIP infer": ("/v2/models/iris-classifier/infer", payloads.oip_json("input", [_ROW])),
}
# (checkout label, route) -> measurements of each round
Runs = dict[tuple[str, str], list[dict[str, float]]]


def measure(checkout: Path, args: argparse.Namespace, logs: Path) -> dict[str, dict[str, float]]:
    """Every route against one server: requests per second and CPU µs per request."""
    logs.mkdir(parents=True)
    service = model_server(args.model_uri, logs, args.server_cpu, {"LOG_LEVEL": "warning"},
                           checkout=checkout)  # fmt: skip
    figures = {}
    try:
        service.wait_ready(timeout=60)
        for route, (path, body) in ROUTES.items():
            url = service.url + path
            run_wrk(url, body, concurrency=16, duration_s=args.warmup, cpu=args.client_cpu)
            before = service.cpu_seconds()
            result = run_wrk(url, body, concurrency=16, duration_s=args.duration,
                             cpu=args.client_cpu)  # fmt: skip
            if result.errors:
                raise RuntimeError(f"{route} on {service.name}: {result.errors} failed requests")
            cpu = service.cpu_seconds() - before
            figures[route] = {"rps": result.rps, "cpu_us": cpu / max(result.requests, 1) * 1e6}
    finally:
        service.stop()
    return figures


def commit(checkout: Path) -> str:
    """The checkout's commit (with `+changes` if its tree differs from it), else its path."""

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", "-C", str(checkout), *args], capture_output=True, text=True)

    head = git("rev-parse", "--short", "HEAD")
    if head.returncode != 0:
        return str(checkout)
    dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    return f"commit {head.stdout.strip()}" + (" +changes" if dirty else "")


def table(runs: Runs) -> list[str]:
    lines = [
        "| Route | before: req/s | after: req/s | change | before: CPU per request "
        "| after: CPU per request | change |",
        "|---|---|---|---|---|---|---|",
    ]
    for route in ROUTES:
        cells = [route]
        for key, unit, digits in (("rps", "req/s", 0), ("cpu_us", "µs", 1)):
            before = [r[key] for r in runs["before", route]]
            after = [r[key] for r in runs["after", route]]
            change = statistics.median(after) / statistics.median(before) - 1
            cells += [spread(before).text(unit, digits), spread(after).text(unit, digits),
                      f"{change:+.1%}"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench-compare", description=__doc__)
    parser.add_argument("--before", type=Path, required=True, help="the older checkout")
    parser.add_argument("--model-uri", default="models:/iris-classifier@production")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    parser.add_argument("--out", type=Path, help="also write the table here, as Markdown")
    args = parser.parse_args(argv)
    if not (args.before / "server" / "__main__.py").is_file():
        print(f"error: {args.before} is not a checkout of this repository", file=sys.stderr)
        return 2
    hint = missing_store() if args.model_uri.startswith("models:/") else None
    if hint:
        print(f"error: {hint}", file=sys.stderr)
        return 2
    described = machine.describe()
    runs: Runs = {}
    checkouts = {"before": args.before.resolve(), "after": REPO_ROOT}
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as tmp:
        for round_ in range(args.rounds):
            order = ("before", "after") if round_ % 2 == 0 else ("after", "before")
            for label in order:
                figures = measure(checkouts[label], args, Path(tmp) / f"{label}-{round_}")
                for route, figure in figures.items():
                    runs.setdefault((label, route), []).append(figure)
                print(f"  round {round_ + 1} {label}: " + ", ".join(
                    f"{route} {f['rps']:,.0f} req/s {f['cpu_us']:.1f} µs"
                    for route, f in figures.items()), flush=True)  # fmt: skip
    lines = [
        f"`make bench-compare` on {machine.one_line(described)}: before is "
        f"{commit(checkouts['before'])}, after {commit(REPO_ROOT)}; {args.rounds} rounds of "
        f"{args.duration:g} s per route, wrk c16 on CPU {args.client_cpu}, the server on CPU "
        f"{args.server_cpu}; medians (range).",
        "",
        *table(runs),
    ]
    print("\n".join(lines))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
