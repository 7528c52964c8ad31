"""Driving wrk: one bounded run at one concurrency, its summary read back as JSON.

wrk's own report prints only the 50/75/90/99th percentiles; a Lua `done` hook writes the summary
we need (p50, p95, p99, every error class) as one JSON line, so nothing is scraped from prose.
"""

import json
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

MARKER = "WRK_JSON "

# Latency values are in microseconds; the body is read from a file so any JSON is safe to send.
_SCRIPT = """
wrk.method = "POST"
{headers}
local body_file = io.open({body_path}, "rb")
wrk.body = body_file:read("*a")
body_file:close()

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{marker}{{"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p95_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"mean_us":%.1f}}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(95), latency:percentile(99),
    latency.max, latency.mean))
end
"""


class WrkError(RuntimeError):
    """wrk could not run, or printed no summary."""


@dataclass(frozen=True)
class WrkResult:
    """One wrk run: throughput, latency percentiles in milliseconds, and error counts."""

    concurrency: int
    duration_s: float
    requests: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    errors: int  # socket errors (connect, read, write, timeout) plus non-2xx/3xx answers
    non_2xx: int
    socket_errors: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def lua_string(text: str) -> str:
    """A Lua string literal holding `text` exactly."""
    safe = b" -_./:"
    escaped = "".join(
        chr(b) if (b < 128 and chr(b).isalnum()) or b in safe else f"\\{b:03d}"
        for b in text.encode()
    )
    return f'"{escaped}"'


def write_script(directory: Path, body: bytes, headers: Mapping[str, str]) -> Path:
    """The Lua script for a POST of `body` with `headers`, written into `directory`."""
    body_path = directory / "body.json"
    body_path.write_bytes(body)
    header_lines = "\n".join(
        f"wrk.headers[{lua_string(name)}] = {lua_string(value)}" for name, value in headers.items()
    )
    script = directory / "post.lua"
    script.write_text(
        _SCRIPT.format(headers=header_lines, body_path=lua_string(str(body_path)), marker=MARKER)
    )
    return script


def parse_summary(stdout: str, concurrency: int) -> WrkResult:
    """Read the JSON line the `done` hook printed."""
    for line in stdout.splitlines():
        if line.startswith(MARKER):
            raw = json.loads(line.removeprefix(MARKER))
            break
    else:
        raise WrkError(f"wrk printed no summary:\n{stdout[-2000:]}")
    duration = raw["duration_us"] / 1e6
    socket_errors = raw["connect"] + raw["read"] + raw["write"] + raw["timeout"]
    return WrkResult(
        concurrency=concurrency,
        duration_s=round(duration, 3),
        requests=raw["requests"],
        rps=raw["requests"] / duration if duration > 0 else 0.0,
        p50_ms=raw["p50_us"] / 1000,
        p95_ms=raw["p95_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        mean_ms=raw["mean_us"] / 1000,
        errors=socket_errors + raw["status"],
        non_2xx=raw["status"],
        socket_errors=socket_errors,
    )


def pinned(command: list[str], cpu: int | None) -> list[str]:
    """`command` pinned to one CPU with taskset, or unchanged when `cpu` is None."""
    if cpu is None:
        return command
    return ["taskset", "-c", str(cpu), *command]


def run_wrk(
    url: str,
    body: bytes,
    *,
    concurrency: int,
    duration_s: float,
    headers: Mapping[str, str] | None = None,
    cpu: int | None = None,
    timeout_s: float = 2.0,
) -> WrkResult:
    """POST `body` to `url` from `concurrency` connections on one wrk thread for `duration_s`."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise WrkError("wrk is not installed: run `make system-deps` (Debian package wrk)")
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    with tempfile.TemporaryDirectory(prefix="loadtest-") as tmp:
        script = write_script(Path(tmp), body, all_headers)
        command = pinned(
            [
                wrk,
                "--threads",
                "1",
                "--connections",
                str(concurrency),
                "--duration",
                f"{max(1, round(duration_s))}s",  # wrk takes whole seconds
                "--timeout",
                f"{timeout_s:g}s",
                "--script",
                str(script),
                url,
            ],
            cpu,
        )
        try:
            completed = subprocess.run(
                command, capture_output=True, text=True, timeout=duration_s + timeout_s + 30
            )
        except subprocess.TimeoutExpired as exc:
            raise WrkError(f"wrk did not finish: {' '.join(command)}") from exc
    if completed.returncode != 0:
        raise WrkError(f"wrk failed ({completed.returncode}): {completed.stderr.strip()[-2000:]}")
    return parse_summary(completed.stdout, concurrency)
