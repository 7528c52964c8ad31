"""Driving h2load (nghttp2's HTTP/2 load generator) for unary gRPC calls.

A unary gRPC call is an HTTP/2 POST of one length-prefixed message with `content-type:
application/grpc`; h2load sends the same body on every stream, from C, so the figure is the
server's and not a Python client's. h2load judges answers by their HTTP status only, and gRPC
reports errors in trailers: the caller checks one call with a real gRPC client first.
"""

import shutil
import statistics
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from loadtest.wrk import pinned


class H2loadError(RuntimeError):
    """h2load could not run, or every request failed."""


@dataclass(frozen=True)
class H2loadResult:
    concurrency: int
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    failed: int


def run_h2load(
    url: str,
    body: bytes,
    *,
    concurrency: int,
    duration_s: float,
    warmup_s: float = 0.0,
    headers: Mapping[str, str] | None = None,
    cpu: int | None = None,
) -> H2loadResult:
    """POST `body` as a gRPC call to `url` on `concurrency` connections for `duration_s`."""
    h2load = shutil.which("h2load")
    if h2load is None:
        raise H2loadError("h2load is not installed: run `make system-deps` (nghttp2-client)")
    with tempfile.TemporaryDirectory(prefix="h2load-") as tmp:
        data, log = Path(tmp) / "body", Path(tmp) / "requests.tsv"
        data.write_bytes(body)
        all_headers = {"content-type": "application/grpc", "te": "trailers", **(headers or {})}
        command = [h2load, "--clients", str(concurrency), "--max-concurrent-streams", "1",
                   "--threads", "1", "--duration", str(max(1, round(duration_s))),
                   "--data", str(data), "--log-file", str(log)]  # fmt: skip
        if warmup_s > 0:
            command += ["--warm-up-time", str(max(1, round(warmup_s)))]
        for name, value in all_headers.items():
            command += ["--header", f"{name}: {value}"]
        command.append(url)
        completed = subprocess.run(
            pinned(command, cpu),
            capture_output=True,
            text=True,
            timeout=duration_s + warmup_s + 60,
            check=False,
        )
        if completed.returncode != 0:
            raise H2loadError(f"h2load failed: {completed.stderr.strip()[-2000:]}")
        lines = [line.split("\t") for line in log.read_text().splitlines() if line]
    ok = [int(fields[2]) / 1000 for fields in lines if fields[1] == "200"]
    if not ok:
        raise H2loadError(f"no request succeeded:\n{completed.stdout[-2000:]}")
    ok.sort()
    return H2loadResult(
        concurrency=concurrency,
        requests=len(ok),
        rps=len(ok) / max(1, round(duration_s)),
        p50_ms=statistics.median(ok),
        p99_ms=ok[min(len(ok) - 1, int(len(ok) * 0.99))],
        failed=len(lines) - len(ok),
    )
