"""Soak benchmark: hundreds of thousands of requests against one server process, watching its memory.

    python loadtest/soak.py [--requests 200000] [--concurrency 32] [--url http://host:port]

Without --url it starts `python -m server` itself (MODEL_URI and the rest from the environment;
the default serves models:/iris-classifier@production from the local store `make train` fills).
A mix of single-row /predict, 10-row batches and Open Inference Protocol calls goes over
keep-alive connections from an asyncio client; the server's resident memory is sampled every few
seconds. Prints the RSS first/last/max, the error count and the rate, and exits 1 on any error
or when memory grew by more than --max-growth-mb between the first and last samples (after
warm-up). Self-contained on purpose: it imports nothing from the repository.
"""

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROW = {
    "sepal length (cm)": 5.1,
    "sepal width (cm)": 3.5,
    "petal length (cm)": 1.4,
    "petal width (cm)": 0.2,
}


def _request(host: str, path: str, payload: object) -> bytes:
    body = json.dumps(payload).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def request_mix(host: str, features: list[str], row: list[float], model: str) -> list[bytes]:
    """Ten requests, cycled: 8 single rows, 1 batch of 10, 1 OIP inference."""
    single = _request(host, "/predict", {"features": dict(zip(features, row, strict=True))})
    batch = _request(host, "/predict", {"instances": [dict(zip(features, row, strict=True))] * 10})
    oip = _request(
        host,
        f"/v2/models/{model}/infer",
        {"inputs": [{"name": "input", "shape": [1, len(row)], "datatype": "FP32", "data": row}]},
    )
    return [single] * 8 + [batch, oip]


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def rss_from_metrics(url: str) -> int:
    """process_resident_memory_bytes from /metrics, for a server this script did not start."""
    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:  # noqa: S310
        for line in response.read().decode().splitlines():
            if line.startswith("process_resident_memory_bytes "):
                return int(float(line.split()[1]))
    raise RuntimeError("no process_resident_memory_bytes in /metrics")


async def connection(
    host: str, port: int, requests: list[bytes], budget: list[int], stats: dict[str, int]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    i = 0
    try:
        while budget[0] > 0:
            budget[0] -= 1
            writer.write(requests[i % len(requests)])
            i += 1
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            stats["requests"] += 1
            if status != 200:
                stats["errors"] += 1
                stats[f"status_{status}"] = stats.get(f"status_{status}", 0) + 1
    except (OSError, asyncio.IncompleteReadError) as exc:
        stats["errors"] += 1
        stats[type(exc).__name__] = stats.get(type(exc).__name__, 0) + 1
    finally:
        writer.close()


async def soak(args: argparse.Namespace, url: str, sample_rss: object) -> dict[str, object]:
    host, port = url.removeprefix("http://").rstrip("/").split(":")
    with urllib.request.urlopen(url + "/model/info", timeout=5) as response:  # noqa: S310
        info = json.loads(response.read())
    with urllib.request.urlopen(f"{url}/v2/models/{info['name']}", timeout=5) as response:  # noqa: S310
        n_features = json.loads(response.read())["inputs"][0]["shape"][1]
    row = [ROW.get(f, 0.1) for f in info["features"]][:n_features]
    requests = request_mix(f"{host}:{port}", info["features"], row, info["name"])
    stats = {"requests": 0, "errors": 0}
    budget = [args.requests]
    samples: list[tuple[float, int]] = []
    started = time.monotonic()

    async def sampler() -> None:
        while True:
            samples.append((time.monotonic() - started, sample_rss()))  # type: ignore[operator]
            last = samples[-1]
            print(
                f"  t={last[0]:6.1f}s  requests={stats['requests']:>8}  "
                f"errors={stats['errors']}  rss={last[1] / 2**20:.1f} MiB",
                flush=True,
            )
            await asyncio.sleep(args.sample_seconds)

    sampling = asyncio.create_task(sampler())
    await asyncio.gather(
        *(connection(host, int(port), requests, budget, stats) for _ in range(args.concurrency))
    )
    elapsed = time.monotonic() - started
    sampling.cancel()
    samples.append((elapsed, sample_rss()))  # type: ignore[operator]
    # Warm-up (allocator arenas, first-use caches) is excluded from the growth figure.
    steady = [s for s in samples if s[0] >= args.warmup_seconds] or samples
    return {
        "model": f"{info['name']} version {info['version']}",
        "requests": stats["requests"],
        "errors": stats["errors"],
        "error_detail": {k: v for k, v in stats.items() if k not in ("requests", "errors")},
        "seconds": round(elapsed, 1),
        "requests_per_second": round(stats["requests"] / elapsed),
        "rss_first_mib": round(samples[0][1] / 2**20, 1),
        "rss_after_warmup_mib": round(steady[0][1] / 2**20, 1),
        "rss_last_mib": round(samples[-1][1] / 2**20, 1),
        "rss_max_mib": round(max(s[1] for s in samples) / 2**20, 1),
        "growth_after_warmup_mib": round((samples[-1][1] - steady[0][1]) / 2**20, 1),
        "samples": len(samples),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/ready", timeout=2):  # noqa: S310
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the server at {url} did not become ready within {timeout}s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--sample-seconds", type=float, default=5.0)
    parser.add_argument("--warmup-seconds", type=float, default=15.0)
    parser.add_argument("--max-growth-mb", type=float, default=20.0)
    parser.add_argument("--url", help="an already running server (default: start one)")
    parser.add_argument("--json", type=Path, help="also write the summary here")
    args = parser.parse_args()

    server = None
    if args.url:
        url = args.url.rstrip("/")
        sample_rss = lambda: rss_from_metrics(url)  # noqa: E731
    else:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "SHUTDOWN_DELAY_SECONDS": "0"}
        root = Path(__file__).resolve().parent.parent
        server = subprocess.Popen([sys.executable, "-m", "server"], cwd=root, env=env,
                                  stdout=subprocess.DEVNULL)  # fmt: skip
        pid = server.pid
        sample_rss = lambda: rss_bytes(pid)  # noqa: E731
    try:
        wait_ready(url)
        print(f"soak: {args.requests} requests, {args.concurrency} connections, {url}")
        summary = asyncio.run(soak(args, url, sample_rss))
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    ok = summary["errors"] == 0 and summary["growth_after_warmup_mib"] <= args.max_growth_mb
    print("soak: PASS" if ok else "soak: FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
