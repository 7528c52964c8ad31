"""`make bench`: this server against the constant-JSON yardstick and MLflow's scoring server.

One run, one machine, one registered model version, one load generator (wrk, one thread, its own
CPU), every server on one worker pinned to the same other CPU. Each figure is the median of
`--repeats` runs (the servers take turns within each repeat, so a burst of noise from elsewhere
hits them alike) and is printed with its spread and, where the issue sets one, its target.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.error
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from loadtest import chart, inprocess, machine, mlflow_models, payloads, servers
from loadtest.processes import Service, StartError, post
from loadtest.run import DEFAULT_OUT, env_default, pinning
from loadtest.stats import Spread, spread
from loadtest.table import duration, render
from loadtest.wrk import WrkError, WrkResult, run_wrk
from training.errors import TrainingError

OURS, BASELINE = "this server", "constant JSON"
MLFLOW_ONNX, MLFLOW_SKLEARN = "mlflow serve (ONNX)", "mlflow serve (sklearn)"
MiB = 1024 * 1024


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    spread: Spread | None = None
    target: str = ""
    met: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "target": self.target or None,
            "met": self.met,
            "spread": self.spread.to_dict() if self.spread else None,
        }


@dataclass
class Target:
    """A server under load and the body it gets for the one shared row."""

    name: str
    service: Service
    endpoint: str
    body: bytes
    served: int = 0  # requests answered in this run, warm-ups included


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="make bench / python -m loadtest.bench",
        description="Benchmark this server against constant JSON and `mlflow models serve`.",
    )
    p.add_argument(
        "--model-uri", default=env_default("MODEL_URI", "models:/iris-classifier@production")
    )
    p.add_argument(
        "--duration",
        type=float,
        default=float(env_default("LOADTEST_DURATION", "10")),
        help="measured seconds per run (whole seconds, default 10)",
    )
    p.add_argument(
        "--warmup",
        type=float,
        default=float(env_default("LOADTEST_WARMUP", "2")),
        help="unmeasured seconds before each run (default 2)",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=int(env_default("LOADTEST_REPEATS", "5")),
        help="runs per figure; figures are medians (default 5)",
    )
    p.add_argument(
        "--soak-requests",
        type=int,
        default=100_000,
        help="requests served before reading resident memory (100000)",
    )
    p.add_argument("--start-repeats", type=int, default=5, help="cold starts timed (5)")
    p.add_argument(
        "--inprocess-seconds",
        type=float,
        default=0.5,
        help="seconds per in-process timing loop (0.5)",
    )
    p.add_argument(
        "--server-only",
        action="store_true",
        help="skip MLflow's scoring server (the bench-server figures only)",
    )
    p.add_argument(
        "--mlflow-start-timeout",
        type=float,
        default=300,
        help="seconds to wait for `mlflow models serve` to answer /ping (300)",
    )
    p.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--client-cpu", type=int, default=1)
    p.add_argument("--no-pin", action="store_true")
    return p


@contextmanager
def pinned_to(cpu: int | None) -> Iterator[None]:
    """Run this process on `cpu` for the block (the in-process timings), then restore."""
    if cpu is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def measure_inprocess(
    model: mlflow_models.ModelVersion, args: argparse.Namespace, cpu: int | None
) -> dict[str, Spread]:
    """scikit-learn predict_proba vs onnxruntime, one row and 1,000 rows, plus the server's path."""
    import mlflow.sklearn

    from server.model import Origin, load_model
    from server.registry import read_model_dir

    served = load_model(read_model_dir(model.directory), Origin(model.uri, "local", model.version))
    example = np.asarray(model.metadata["input_example"], dtype=np.float64)
    one64 = example[:1]
    many64 = np.resize(example, (1000, example.shape[1]))
    one32, many32 = one64.astype(np.float32), many64.astype(np.float32)
    runtime, outputs, feed = served.runtime, served.output_names, served.input_name
    calls: dict[str, Callable[[], object]] = {
        "onnxruntime, 1 row": lambda: runtime.run(outputs, feed, one32),
        "server model.predict, 1 row": lambda: served.predict(one32),
        "onnxruntime, 1000 rows": lambda: runtime.run(outputs, feed, many32),
    }
    if model.sklearn_uri:
        forest = mlflow.sklearn.load_model(model.sklearn_uri)
        calls["sklearn predict_proba, 1 row"] = lambda: forest.predict_proba(one64)
        calls["sklearn predict_proba, 1000 rows"] = lambda: forest.predict_proba(many64)
    else:
        print("note: the model version has no sklearn_model_uri tag; no scikit-learn figures")
    results = {}
    with pinned_to(cpu):
        for name, call in calls.items():
            results[name] = inprocess.per_call_seconds(
                call, repeats=max(args.repeats, 3), seconds=args.inprocess_seconds
            )
            print(f"  in process: {name:<34} {duration(results[name].median * 1000)}", flush=True)
    return results


def measure_start(
    model: mlflow_models.ModelVersion, logs: Path, cpu: int | None, repeats: int
) -> Spread:
    """Seconds from `python -m server` to /ready answering 200, with the exported directory."""
    times = []
    for _ in range(repeats):
        service = servers.model_server(str(model.directory), logs, cpu, {"MODEL_POLL_SECONDS": "0"})
        try:
            times.append(service.wait_ready(timeout=60, poll=0.005))
        finally:
            service.stop()
    return spread(times)


def agreeing_label(target: Target, classes: list[str]) -> int | None:
    try:
        answer = json.loads(post(target.endpoint, target.body))
    except urllib.error.HTTPError as exc:
        print(f"  {target.name}: answered {exc.code}: {exc.read()[:160].decode(errors='replace')}")
        return None
    return mlflow_models.label_index(answer, classes)


def load(
    target: Target,
    body: bytes,
    concurrency: int,
    args: argparse.Namespace,
    cpu: int | None,
    cpu_runs: list[float],
) -> WrkResult:
    """A warm-up, then one measured wrk run; both count towards the requests served.

    The server's CPU seconds per request in the measured run are appended to `cpu_runs`.
    """
    if args.warmup > 0:
        warm = run_wrk(
            target.endpoint, body, concurrency=concurrency, duration_s=args.warmup, cpu=cpu
        )
        target.served += warm.requests
    cpu_before = target.service.cpu_seconds()
    result = run_wrk(
        target.endpoint, body, concurrency=concurrency, duration_s=args.duration, cpu=cpu
    )
    target.served += result.requests
    if result.requests:
        cpu_runs.append((target.service.cpu_seconds() - cpu_before) / result.requests)
    return result


def start_mlflow(
    model: mlflow_models.ModelVersion,
    work: Path,
    logs: Path,
    cpu: int | None,
    args: argparse.Namespace,
) -> list[Target]:
    """MLflow serving the same version: its ONNX form (re-wrapped if need be) and its sklearn form."""
    features, row = model.metadata["features"], payloads.example_row(model.metadata["features"])
    frame = payloads.mlflow_dataframe(features, row)
    started = [("onnx", mlflow_models_service(MLFLOW_ONNX, model.uri, logs, cpu), frame)]
    if model.sklearn_uri:
        started.append(
            ("sklearn", mlflow_models_service(MLFLOW_SKLEARN, model.sklearn_uri, logs, cpu), frame)
        )
    targets = []
    for kind, service, body in started:
        service.wait_ready(timeout=args.mlflow_start_timeout)
        target = Target(service.name, service, service.url + "/invocations", body)
        if kind == "onnx" and agreeing_label(target, model.metadata["classes"]) is None:
            print(
                "  MLflow cannot answer a DataFrame request for the registered ONNX model "
                "(mlflow/mlflow#12539); serving the same model.onnx with a tensor signature",
                flush=True,
            )
            service.stop()
            wrapped = mlflow_models.rewrap_onnx_with_tensor_signature(
                model, work / "mlflow-onnx-tensor"
            )
            service = mlflow_models_service(MLFLOW_ONNX, str(wrapped), logs, cpu)
            service.wait_ready(timeout=args.mlflow_start_timeout)
            target = Target(
                MLFLOW_ONNX + " re-wrapped",
                service,
                service.url + "/invocations",
                payloads.mlflow_tensor(row),
            )
        targets.append(target)
    return targets


def mlflow_models_service(name: str, uri: str, logs: Path, cpu: int | None) -> Service:
    print(f"  starting `mlflow models serve -m {uri}` ({name})", flush=True)
    return servers.mlflow_server(name, uri, logs, cpu)


def ratio_spread(numerator: list[float], denominator: list[float]) -> Spread:
    """Per-repeat ratios of paired runs (taken moments apart), summarised."""
    return spread([n / d for n, d in zip(numerator, denominator, strict=True) if d > 0] or [0.0])


def figures_from(
    inproc: dict[str, Spread],
    runs: dict[str, list[WrkResult]],
    names: dict[str, str],
    extra: dict[str, Any],
) -> list[Figure]:
    figures: list[Figure] = []

    def us(key: str) -> Spread | None:
        s = inproc.get(key)
        return (
            None
            if s is None
            else Spread(s.median * 1e6, s.low * 1e6, s.high * 1e6, [v * 1e6 for v in s.runs])
        )

    server_one = us("server model.predict, 1 row")
    for key in (
        "onnxruntime, 1 row",
        "sklearn predict_proba, 1 row",
        "onnxruntime, 1000 rows",
        "sklearn predict_proba, 1000 rows",
    ):
        s = us(key)
        if s is not None:
            figures.append(Figure(f"in process: {key}", s.median, "µs", s))
    if server_one is not None:
        figures.append(
            Figure(
                "in process: inference inside the server, 1 row",
                server_one.median,
                "µs",
                server_one,
                "< 20 µs",
                server_one.median < 20,
            )
        )
    for rows in ("1 row", "1000 rows"):
        sk, ort_ = inproc.get(f"sklearn predict_proba, {rows}"), inproc.get(f"onnxruntime, {rows}")
        if sk is not None and ort_ is not None:
            r = ratio_spread(sk.runs, ort_.runs)
            target = "≥ 300x" if rows == "1 row" else ""
            figures.append(
                Figure(
                    f"in process: sklearn / onnxruntime, {rows}",
                    r.median,
                    "x",
                    r,
                    target,
                    r.median >= 300 if target else None,
                )
            )

    def rps(name: str) -> list[float]:
        return [w.rps for w in runs.get(name, [])]

    ours = rps("ours c16")
    for key, label in names.items():
        values = rps(key)
        if values:
            s = spread(values)
            figures.append(Figure(f"/predict 1 row c16: {label}", s.median, "req/s", s))
            cpu_runs = extra.get("cpu", {}).get(key)
            if cpu_runs:
                c = spread([v * 1e6 for v in cpu_runs])
                figures.append(Figure(f"server CPU per request at c16: {label}", c.median, "µs", c))
            p99 = spread([w.p99_ms for w in runs[key]])
            target = "< 5 ms" if key == "ours c16" else ""
            figures.append(
                Figure(
                    f"p99 at c16: {label}",
                    p99.median,
                    "ms",
                    p99,
                    target,
                    p99.median < 5 if target else None,
                )
            )
    if rps("baseline c16"):
        r = ratio_spread(ours, rps("baseline c16"))
        figures.append(
            Figure(
                "ratio: this server / constant JSON, c16",
                r.median,
                "x",
                r,
                "≥ 0.6x",
                r.median >= 0.6,
            )
        )
    for key in ("mlflow-onnx c16", "mlflow-sklearn c16"):
        if rps(key):
            r = ratio_spread(ours, rps(key))
            target = "≥ 30x" if key == "mlflow-onnx c16" else ""
            figures.append(
                Figure(
                    f"ratio: this server / {names[key]}, c16",
                    r.median,
                    "x",
                    r,
                    target,
                    r.median >= 30 if target else None,
                )
            )
    # The throughput ratio each server would reach with its CPU to itself: CPU seconds per
    # request barely move when other work shares the machine, so this is the robust estimate.
    cpu = extra.get("cpu", {})
    goals = {"baseline c16": 0.6, "mlflow-onnx c16": 30.0, "mlflow-sklearn c16": None}
    for key, goal in goals.items():
        if cpu.get("ours c16") and cpu.get(key):
            r = ratio_spread(cpu[key], cpu["ours c16"])
            figures.append(
                Figure(
                    f"ratio by CPU per request: this server vs {names[key]}",
                    r.median,
                    "x",
                    r,
                    f"≥ {goal:g}x" if goal else "",
                    r.median >= goal if goal else None,
                )
            )
    if runs.get("ours c100"):
        p99 = spread([w.p99_ms for w in runs["ours c100"]])
        errors = sum(w.errors for w in runs["ours c100"])
        figures.append(
            Figure("p99 at c100: this server", p99.median, "ms", p99, "< 15 ms", p99.median < 15)
        )
        figures.append(
            Figure("errors at c100: this server (all repeats)", errors, "", None, "0", errors == 0)
        )
    if runs.get("ours batch1000 c1"):
        p50 = spread([w.p50_ms for w in runs["ours batch1000 c1"]])
        figures.append(
            Figure(
                "1,000 rows through /predict, end to end (p50, c1)",
                p50.median,
                "ms",
                p50,
                "< 10 ms",
                p50.median < 10,
            )
        )
    if "rss_bytes" in extra:
        mib = extra["rss_bytes"] / MiB
        figures.append(
            Figure(
                f"resident memory after {extra['served']:,} requests",
                mib,
                "MiB",
                None,
                "< 100 MiB",
                mib < 100,
            )
        )
    for label, key in (
        ("constant JSON", "baseline_rss_bytes"),
        ("mlflow serve (ONNX)", "mlflow_onnx_rss_bytes"),
        ("mlflow serve (sklearn)", "mlflow_sklearn_rss_bytes"),
    ):
        if key in extra:
            figures.append(Figure(f"resident memory: {label}", extra[key] / MiB, "MiB"))
    if "start" in extra:
        start: Spread = extra["start"]
        figures.append(
            Figure(
                "process start to ready, local model",
                start.median,
                "s",
                start,
                "< 1 s",
                start.median < 1,
            )
        )
    return figures


def show(value: float, unit: str) -> str:
    if unit == "x":
        return f"{value:,.3g}x" if value < 1000 else f"{value:,.0f}x"
    if unit == "req/s":
        return f"{value:,.0f} req/s"
    if unit == "µs":
        return duration(value / 1000)
    if unit == "ms":
        return duration(value)
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "MiB":
        return f"{value:.0f} MiB"
    return f"{value:g}"


def figures_table(figures: list[Figure], markdown: bool = False) -> str:
    rows = []
    for f in figures:
        noise = ""
        if f.spread is not None and len(f.spread.runs) > 1:
            noise = f"{show(f.spread.low, f.unit)} to {show(f.spread.high, f.unit)} (±{f.spread.noise * 50:.0f}%)"
        met = "" if f.met is None else ("met" if f.met else "MISSED")
        rows.append([f.name, show(f.value, f.unit), noise, f.target, met])
    return render(["Figure", "Median", "Range over repeats", "Target", ""], rows, markdown=markdown)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.repeats < 1 or args.duration < 1:
        print("error: --repeats and --duration must be at least 1", file=sys.stderr)
        return 2
    server_cpu, client_cpu = pinning(True, args.no_pin, args.server_cpu, args.client_cpu)
    hint = servers.missing_store()
    if hint:
        print(f"error: {hint}", file=sys.stderr)
        return 1
    args.out_dir.mkdir(parents=True, exist_ok=True)
    about = machine.describe()
    started_at = time.monotonic()
    services: list[Service] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        work, logs = Path(tmp), Path(tmp) / "logs"
        logs.mkdir()
        try:
            model = mlflow_models.resolve(args.model_uri, work / "model")
            print(
                f"benchmark of {model.uri} (from {args.model_uri}); {args.repeats} repeats of "
                f"{args.duration:g}s after {args.warmup:g}s warm-up; server CPU {server_cpu}, "
                f"wrk CPU {client_cpu}",
                flush=True,
            )
            inproc = measure_inprocess(model, args, server_cpu)
            start = measure_start(model, logs, server_cpu, args.start_repeats)
            print(
                f"  start to ready: {start.median:.2f} s (median of {len(start.runs)})", flush=True
            )

            features = model.metadata["features"]
            row = payloads.example_row(features)
            single = payloads.predict_single(features, row)
            batch1000 = payloads.predict_batch(features, row, 1000)
            ours_service = servers.model_server(model.uri, logs, server_cpu)
            baseline_service = servers.baseline(logs, server_cpu)
            services += [ours_service, baseline_service]
            for service in (ours_service, baseline_service):
                service.wait_ready(timeout=120)
            ours = Target(OURS, ours_service, ours_service.url + "/predict", single)
            baseline = Target(BASELINE, baseline_service, baseline_service.url + "/predict", single)
            mlflow_targets: list[Target] = []
            if not args.server_only:
                mlflow_targets = start_mlflow(model, work, logs, server_cpu, args)
                services += [t.service for t in mlflow_targets]

            classes = model.metadata["classes"]
            agreement = {t.name: agreeing_label(t, classes) for t in (ours, *mlflow_targets)}
            expected = agreement[OURS]
            for name, label in agreement.items():
                verdict = "agrees" if label == expected else "DISAGREES"
                print(f"  answer for the shared row: {name}: class {label} ({verdict})", flush=True)

            keys = {"ours c16": ours, "baseline c16": baseline}
            for t in mlflow_targets:
                keys[
                    "mlflow-onnx c16" if t.name.startswith(MLFLOW_ONNX) else "mlflow-sklearn c16"
                ] = t
            names = {key: t.name for key, t in keys.items()}
            runs: dict[str, list[WrkResult]] = {
                k: [] for k in [*keys, "ours c100", "ours batch1000 c1"]
            }
            cpu: dict[str, list[float]] = {k: [] for k in runs}
            plan = [(key, t, t.body, 16) for key, t in keys.items()]
            plan += [("ours c100", ours, single, 100), ("ours batch1000 c1", ours, batch1000, 1)]
            for repeat in range(args.repeats):
                for key, t, body, level in plan:
                    runs[key].append(load(t, body, level, args, client_cpu, cpu[key]))
                line = ", ".join(f"{names[k]} {runs[k][-1].rps:,.0f}" for k in keys)
                print(f"  repeat {repeat + 1}/{args.repeats} req/s at c16: {line}", flush=True)

            extra: dict[str, Any] = {"start": start, "cpu": cpu}
            soak_deadline = time.monotonic() + 900
            while ours.served < args.soak_requests and time.monotonic() < soak_deadline:
                ours.served += run_wrk(
                    ours.endpoint, single, concurrency=16, duration_s=5, cpu=client_cpu
                ).requests
            extra["served"] = ours.served
            extra["rss_bytes"] = ours_service.rss_bytes()
            extra["baseline_rss_bytes"] = baseline_service.rss_bytes()
            for t in mlflow_targets:
                key = (
                    "mlflow_onnx_rss_bytes"
                    if t.name.startswith(MLFLOW_ONNX)
                    else "mlflow_sklearn_rss_bytes"
                )
                extra[key] = t.service.rss_bytes()
        except (StartError, WrkError, TrainingError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        finally:
            for service in services:
                service.stop()

    figures = figures_from(inproc, runs, names, extra)
    title = f"{model.name} v{model.version}, {machine.one_line(about)}"
    report = {
        "kind": "bench",
        "machine": about,
        "config": {
            **{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "server_cpu": server_cpu,
            "client_cpu": client_cpu,
            "load_generator": "wrk, 1 thread",
            "workers": 1,
        },
        "model": {
            "name": model.name,
            "version": model.version,
            "uri": model.uri,
            "sklearn_uri": model.sklearn_uri,
        },
        "agreement": agreement,
        "servers": names,
        "figures": [f.to_dict() for f in figures],
        "inprocess_seconds": {k: v.to_dict() for k, v in inproc.items()},
        "runs": {k: [w.to_dict() for w in v] for k, v in runs.items()},
        "served": extra.get("served"),
        "server_cpu_seconds_per_request": extra.get("cpu"),
        "elapsed_s": round(time.monotonic() - started_at, 1),
    }
    (args.out_dir / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    http_bars = [(names[k], *_bar([w.rps for w in runs[k]])) for k in names if runs[k]]
    inproc_bars = [(k, *_bar([v * 1e6 for v in s.runs])) for k, s in inproc.items()]
    chart.bench_chart(http_bars, inproc_bars, title, args.out_dir / "bench.png")
    markdown = (
        f"Measured on {machine.one_line(about)}; {model.uri}; medians of "
        f"{args.repeats} runs of {args.duration:g}s (range in brackets).\n\n"
        f"{figures_table(figures, markdown=True)}\n"
    )
    (args.out_dir / "bench.md").write_text(markdown)
    print()
    print(figures_table(figures))
    noisy = [f.name for f in figures if f.spread is not None and f.spread.noise > 0.2]
    print(f"\nmachine: {machine.one_line(about)}")
    if noisy:
        print(
            f"noisy (runs more than ±10% apart): {len(noisy)} of {len(figures)} figures; "
            "rerun on a quiet machine before quoting them"
        )
    print(f"wrote {args.out_dir / 'bench.json'}, bench.png and bench.md (the README table)")
    return 0


def _bar(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


if __name__ == "__main__":
    raise SystemExit(main())
