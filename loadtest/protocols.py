"""`make bench-protocols`: every protocol the server speaks, beside /predict, on one server.

One server process (gRPC on) pinned to one CPU, the load generator on the other: wrk for HTTP,
h2load for gRPC. For each protocol: one row at concurrency 16 (throughput, and the server's CPU
per request, which hardly moves when other work shares the machine) and a 1000-row batch at
concurrency 1 (latency, end to end). Each figure is the median of `--repeats` runs, the protocols
taking turns within a repeat. A protocol's CPU per request is compared with that of a /predict run
made just before it, and "vs /predict" is the median of those paired ratios: a shared host's
speed drifts by several percent over the minutes a repeat takes, and the pairing cancels that.
Results go to loadtest/results/protocols.json and protocols.md.
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtest import machine, payloads, servers
from loadtest.h2load import H2loadError, run_h2load
from loadtest.processes import Service, StartError, free_port, get, post
from loadtest.run import DEFAULT_OUT, env_default, pinning
from loadtest.table import duration, render
from loadtest.wrk import WrkError, run_wrk

BATCH = 1000
DOCS = servers.REPO_ROOT / "docs" / "protocols.md"
START, END = "<!-- bench-protocols:start -->", "<!-- bench-protocols:end -->"
PREDICT = "/predict"
# What "as fast as /predict" means here: at most this much more server CPU per one-row request.
CPU_TARGET = 1.15


@dataclass
class Form:
    """One protocol's request, for one row and for a batch."""

    name: str
    path: str
    one: bytes
    batch: bytes
    headers: dict[str, str]
    batch_headers: dict[str, str]
    grpc: bool = False


def forms(service: Service, grpc_port: int) -> list[Form]:
    info = json.loads(get(service.url + "/model/info"))
    name, features = info["name"], info["features"]
    metadata = json.loads(get(f"{service.url}/v2/models/{name}"))
    input_name = metadata["inputs"][0]["name"]
    row = payloads.example_row(features)
    rows = [row] * BATCH
    one_binary, one_length = payloads.oip_binary(input_name, [row])
    batch_binary, batch_length = payloads.oip_binary(input_name, rows)
    infer = f"/v2/models/{name}/infer"

    def binary(length: int) -> dict[str, str]:
        return {"Content-Type": "application/octet-stream",
                "Inference-Header-Content-Length": str(length)}  # fmt: skip

    return [
        Form("/predict", PREDICT, payloads.predict_single(features, row),
             payloads.predict_batch(features, row, BATCH), {}, {}),
        Form("OIP JSON", infer, payloads.oip_json(input_name, [row]),
             payloads.oip_json(input_name, rows), {}, {}),
        Form("OIP binary", infer, one_binary, batch_binary, binary(one_length),
             binary(batch_length)),
        Form("MLflow /invocations", "/invocations", payloads.mlflow_split(features, [row]),
             payloads.mlflow_split(features, rows), {}, {}),
        Form("KServe V1", f"/v1/models/{name}:predict", payloads.kserve_v1([row]),
             payloads.kserve_v1(rows), {}, {}),
        Form("gRPC (raw tensors)",
             f"http://127.0.0.1:{grpc_port}/inference.GRPCInferenceService/ModelInfer",
             payloads.grpc_infer(name, input_name, [row]),
             payloads.grpc_infer(name, input_name, rows), {}, {}, grpc=True),
    ]  # fmt: skip


def check_grpc(port: int, body: bytes) -> None:
    """One call through a real gRPC client: h2load cannot see a failure in the trailers."""
    import grpc

    from server.protos import grpc_predict_v2_pb2 as pb

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(
            "/inference.GRPCInferenceService/ModelInfer",
            request_serializer=lambda raw: raw,
            response_deserializer=pb.ModelInferResponse.FromString,
        )
        answer = call(body[5:], timeout=10)
        assert answer.outputs, "the gRPC answer has no outputs"


def measure(
    form: Form, service: Service, batch: bool, duration_s: float, warmup_s: float,
    cpu: int | None,
) -> dict[str, float]:  # fmt: skip
    """One run: requests per second, p50 latency and the server's CPU per request."""
    body = form.batch if batch else form.one
    headers = form.batch_headers if batch else form.headers
    concurrency = 1 if batch else 16
    url = form.path if form.grpc else service.url + form.path
    run: Callable[..., Any] = run_h2load if form.grpc else run_wrk
    if warmup_s > 0:
        run(url, body, concurrency=concurrency, duration_s=warmup_s, headers=headers, cpu=cpu)
    before = service.cpu_seconds()
    result = run(url, body, concurrency=concurrency, duration_s=duration_s, headers=headers,
                 cpu=cpu)  # fmt: skip
    spent = service.cpu_seconds() - before
    errors = result.failed if form.grpc else result.errors
    if errors or not result.requests:
        raise RuntimeError(f"{form.name}: {errors} failed requests of {result.requests}")
    return {"rps": result.rps, "p50_ms": result.p50_ms, "cpu_us": spent / result.requests * 1e6}


def paired_ratio(runs: dict[str, list[dict[str, float]]]) -> float:
    """A protocol's one-row CPU per request over /predict's: the median of the ratios of each of
    its runs (`one`) to the /predict run made just before it (`paired`, in the same order)."""
    if not runs["paired"]:  # /predict itself
        return 1.0
    pairs = zip(runs["one"], runs["paired"], strict=True)
    return statistics.median(run["cpu_us"] / base["cpu_us"] for run, base in pairs)


def image_size(image: str) -> int | None:
    """The image's size in bytes as Docker reports it, or None when it is not there."""
    import subprocess

    done = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{ .Size }}", image],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return int(done.stdout) if done.returncode == 0 else None


def update_docs(markdown: str) -> None:
    """Replace the figures between the markers of docs/protocols.md."""
    text = DOCS.read_text()
    head, start, rest = text.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        raise SystemExit(f"{DOCS} has no {START} ... {END} block")
    DOCS.write_text(f"{head}{START}\n{markdown}{END}{tail}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="make bench-protocols", description=__doc__)
    p.add_argument(
        "--model-uri", default=env_default("MODEL_URI", "models:/iris-classifier@production")
    )
    p.add_argument("--duration", type=float, default=5, help="measured seconds per run (5)")
    p.add_argument("--warmup", type=float, default=1, help="unmeasured seconds first (1)")
    p.add_argument("--repeats", type=int, default=3, help="runs per figure, medians (3)")
    p.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    p.add_argument("--image", default="", help="also record this Docker image's size")
    p.add_argument(
        "--update-docs",
        action="store_true",
        help=f"write the figures into {DOCS.relative_to(servers.REPO_ROOT)} between its markers",
    )
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--client-cpu", type=int, default=1)
    p.add_argument("--no-pin", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    server_cpu, client_cpu = pinning(True, args.no_pin, args.server_cpu, args.client_cpu)
    hint = servers.missing_store() if args.model_uri.startswith("models:/") else None
    if hint:
        print(f"error: {hint}", file=sys.stderr)
        return 1
    args.out_dir.mkdir(parents=True, exist_ok=True)
    about = machine.describe()
    grpc_port = free_port()
    runs: dict[str, dict[str, list[dict[str, float]]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-protocols-") as tmp:
        service = servers.model_server(
            args.model_uri, Path(tmp), server_cpu,
            {"GRPC_PORT": str(grpc_port), "MODEL_POLL_SECONDS": "0"},
        )  # fmt: skip
        try:
            service.wait_ready(timeout=120)
            plan = forms(service, grpc_port)
            for form in plan:  # every form answers before anything is timed
                if form.grpc:
                    check_grpc(grpc_port, form.one)
                    check_grpc(grpc_port, form.batch)
                else:
                    post(service.url + form.path, form.one, form.headers)
                    post(service.url + form.path, form.batch, form.batch_headers)
                runs[form.name] = {"one": [], "batch": [], "paired": []}
            print(f"protocols on {machine.one_line(about)}; {args.repeats} repeats of "
                  f"{args.duration:g}s; server CPU {server_cpu}, client CPU {client_cpu}",
                  flush=True)  # fmt: skip
            predict = next(form for form in plan if form.name == PREDICT)
            for repeat in range(args.repeats):
                for form in plan:
                    if form is not predict:  # the /predict run its one-row run is paired with
                        runs[form.name]["paired"].append(measure(
                            predict, service, False, args.duration, args.warmup, client_cpu))  # fmt: skip
                    for kind in ("one", "batch"):
                        figures = measure(form, service, kind == "batch", args.duration,
                                          args.warmup, client_cpu)  # fmt: skip
                        runs[form.name][kind].append(figures)
                print(f"  repeat {repeat + 1}/{args.repeats} done", flush=True)
            rss = service.rss_bytes()
        except (StartError, WrkError, H2loadError, RuntimeError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        finally:
            service.stop()

    def median(name: str, kind: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[name][kind])

    rows = []
    summary: dict[str, Any] = {}
    for name in runs:
        cpu = median(name, "one", "cpu_us")
        ratio = paired_ratio(runs[name])
        summary[name] = {
            "one_row_c16_rps": median(name, "one", "rps"),
            "one_row_c16_server_cpu_us": cpu,
            "one_row_c16_cpu_vs_predict": ratio,
            "batch_1000_c1_p50_ms": median(name, "batch", "p50_ms"),
            "batch_1000_c1_server_cpu_us": median(name, "batch", "cpu_us"),
        }
        met = "" if name == PREDICT else ("met" if ratio <= CPU_TARGET else "MISSED")
        rows.append([
            name, f"{summary[name]['one_row_c16_rps']:,.0f}", duration(cpu / 1000),
            f"{ratio:.2f}x", met, duration(summary[name]["batch_1000_c1_p50_ms"]),
            duration(summary[name]["batch_1000_c1_server_cpu_us"] / 1000),
        ])  # fmt: skip
    json_batch = summary["OIP JSON"]["batch_1000_c1_p50_ms"]
    faster = {
        name: json_batch / summary[name]["batch_1000_c1_p50_ms"]
        for name in ("OIP binary", "gRPC (raw tensors)")
    }
    headers = ["Protocol", "1 row c16 req/s", "server CPU/req", "vs /predict",
               f"≤ {CPU_TARGET:.2f}x", "1000 rows c1 p50", "server CPU/batch"]  # fmt: skip
    table_md = render(headers, rows, markdown=True)
    notes = [
        f"1000-row batch, OIP JSON p50 / {name} p50: {ratio:.2f}x" for name, ratio in faster.items()
    ]
    notes.append(f"server resident memory after the runs (gRPC on): {rss / 2**20:.0f} MiB")
    image_bytes = image_size(args.image) if args.image else None
    if image_bytes is not None:
        notes.append(f"image `{args.image}`: {image_bytes / 1e6:.1f} MB ({image_bytes:,} bytes)")
    report = {
        "kind": "bench-protocols",
        "machine": about,
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "summary": summary,
        "binary_over_json_1000_rows": faster,
        "rss_bytes": rss,
        "image_bytes": image_bytes,
        "runs": runs,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (args.out_dir / "protocols.json").write_text(json.dumps(report, indent=2) + "\n")
    markdown = (
        f"Measured on {machine.one_line(about)} at {report['measured_at']} by "
        f"`make bench-protocols`; medians of {args.repeats} runs of {args.duration:g}s; "
        "vs /predict: the median ratio to a /predict run made just before each run.\n\n"
        f"{table_md}\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    )
    (args.out_dir / "protocols.md").write_text(markdown)
    if args.update_docs:
        update_docs(markdown)
        print(f"updated {DOCS}")
    print()
    print(render(headers, rows))
    print("\n".join(notes))
    print(f"wrote {args.out_dir / 'protocols.json'} and protocols.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
