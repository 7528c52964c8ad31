"""Driving hey at a fixed request rate: latency when the server is not saturated.

wrk sends as fast as the server answers, so it measures capacity; what a client sees at a load the
server can carry needs a fixed rate, which hey has (`-q`, per worker). Its per-request CSV
(`-o csv`) is read back, so the percentiles are computed here rather than scraped from prose.
"""

import csv
import io
import shutil
import statistics
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from loadtest.wrk import pinned


class HeyError(RuntimeError):
    """hey could not run, or printed no requests."""


@dataclass(frozen=True)
class HeyResult:
    """One fixed-rate run: what was asked, what was done, latency percentiles in ms."""

    rate: float  # asked, requests per second
    duration_s: float
    requests: int
    rps: float  # achieved
    p50_ms: float
    p99_ms: float
    errors: int  # answers other than 2xx, and requests that got no answer


def parse_csv(text: str, rate: float, duration_s: float) -> HeyResult:
    """hey's `-o csv` output: one line per request (response time in seconds, status)."""
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows:
        raise HeyError(f"hey printed no requests:\n{text[-2000:]}")
    times = sorted(float(row["response-time"]) * 1000 for row in rows)
    errors = sum(not row["status-code"].startswith("2") for row in rows)
    cuts = statistics.quantiles(times, n=100, method="inclusive") if len(times) > 1 else times * 99
    return HeyResult(
        rate=rate,
        duration_s=duration_s,
        requests=len(rows),
        rps=len(rows) / duration_s,
        p50_ms=cuts[49],
        p99_ms=cuts[98],
        errors=errors,
    )


def run_hey(
    url: str,
    body: bytes,
    *,
    rate: float,
    duration_s: float,
    concurrency: int = 16,
    cpu: int | None = None,
) -> HeyResult:
    """POST `body` to `url` at `rate` requests per second in all, from `concurrency` workers."""
    hey = shutil.which("hey")
    if hey is None:
        raise HeyError("hey is not installed: run `make system-deps` (Debian package hey)")
    with tempfile.TemporaryDirectory(prefix="loadtest-") as tmp:
        body_path = Path(tmp) / "body.json"
        body_path.write_bytes(body)
        command = pinned(
            [
                hey, "-z", f"{duration_s:g}s", "-c", str(concurrency),
                "-q", f"{rate / concurrency:g}", "-m", "POST", "-T", "application/json",
                "-D", str(body_path), "-o", "csv", url,
            ],
            cpu,
        )  # fmt: skip
        try:
            completed = subprocess.run(
                command, capture_output=True, text=True, timeout=duration_s + 60
            )
        except subprocess.TimeoutExpired as exc:
            raise HeyError(f"hey did not finish: {' '.join(command)}") from exc
    if completed.returncode != 0:
        raise HeyError(f"hey failed ({completed.returncode}): {completed.stderr.strip()[-2000:]}")
    return parse_csv(completed.stdout, rate, duration_s)
