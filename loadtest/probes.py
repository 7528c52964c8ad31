"""How long /health takes to answer while the server is flooded with the largest batches.

The kubelet restarts a container whose liveness probe (GET /health) does not answer within the
probe's timeout several times in a row; a server that is merely busy must never look dead. This
module drives /predict with many connections sending the largest batch allowed and probes
/health meanwhile as the kubelet does: one probe at a time, each on a new connection.

Two kinds of client: wrk, which sends the next request the moment an answer arrives, a 503 or
not, and polite clients (loadtest.polite_clients), which wait as long as a 503's Retry-After
asks, as the load shedding expects of them.

The first probe goes out just after the load's connections. The server takes new connections
one per turn of its event loop, so that probe waits behind the whole burst of them (the onset);
it is reported apart from the probes that follow, which see the sustained load.

Each probe is timed twice: wall time, and the CPU time the server spent between the probe's
request and its answer, which is the work queued ahead of the probe. On a node that gives the
pod its CPU the two agree (the server is one event loop); on a shared machine wall time also
counts the turns of every other process, while the CPU time does not, so it is the figure that
says what MAX_CONCURRENCY does, whatever else the machine is running.
"""

import http.client
import json
import math
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from loadtest.wrk import pinned, run_wrk

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Load:
    """What the load got: answers by kind over its duration."""

    ok: int  # 200
    shed: int  # 503
    other: int  # any other status, and socket errors or timeouts
    seconds: float


def wrk_load(
    url: str, body: bytes, clients: int, seconds: float, cpu: int | None, connected: threading.Event
) -> Load:
    """wrk: the next request as soon as an answer arrives, whatever it was."""
    # wrk opens its connections within milliseconds of starting.
    threading.Timer(0.5, connected.set).start()
    result = run_wrk(url, body, concurrency=clients, duration_s=seconds, cpu=cpu, timeout_s=10)
    ok = result.requests - result.non_2xx
    # wrk counts every non-2xx; the server's only non-2xx answer to a valid body is the 503.
    return Load(ok, result.non_2xx, result.socket_errors, result.duration_s)


def polite_load(
    url: str, body: bytes, clients: int, seconds: float, cpu: int | None, connected: threading.Event
) -> Load:
    """Clients that wait as long as a 503's Retry-After asks before sending again."""
    with tempfile.TemporaryDirectory(prefix="polite-") as tmp:
        body_file, out = Path(tmp) / "body.json", Path(tmp) / "out.json"
        body_file.write_bytes(body)
        command = [sys.executable, "-m", "loadtest.polite_clients", url, str(body_file),
                   str(clients), str(seconds), str(out)]  # fmt: skip
        with subprocess.Popen(
            pinned(command, cpu), cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
        ) as process:
            assert process.stdout is not None
            if process.stdout.readline().strip() == "connected":
                connected.set()
            process.stdout.read()
            if process.wait(timeout=seconds + 60) != 0:
                raise subprocess.CalledProcessError(process.returncode, command)
        result = json.loads(out.read_text())
    counts = {k: int(v) for k, v in result["counts"].items()}
    ok, shed = counts.pop("200", 0), counts.pop("503", 0)
    return Load(ok, shed, sum(counts.values()), float(result["seconds"]))


@dataclass(frozen=True)
class Probe:
    sent: float  # seconds after the load started
    wall: float  # seconds until the answer; inf when it failed or timed out
    cpu: float  # server CPU seconds between the request and the answer (inf when it failed)


@dataclass(frozen=True)
class ProbeRun:
    onset: Probe  # the probe sent with the load's burst of new connections
    probes: list[Probe]  # those that followed, under the sustained load
    load: Load

    def over(self, seconds: float, cpu: bool = False) -> int:
        """Sustained-load probes at or past `seconds` (a kubelet would count each a failure)."""
        return sum(1 for p in self.probes if (p.cpu if cpu else p.wall) >= seconds)

    def percentile(self, share: float, cpu: bool = False) -> float:
        ordered = sorted(p.cpu if cpu else p.wall for p in self.probes)
        return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


def probe_once(url: str, path: str, timeout: float) -> float:
    """Seconds until a 200 from GET `path` on a new connection; inf on an error or another status."""
    parts = urllib.parse.urlsplit(url)
    started = time.perf_counter()
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        ok = response.status == 200
    except (OSError, http.client.HTTPException):
        ok = False
    finally:
        connection.close()
    return time.perf_counter() - started if ok else math.inf


def health_under_load(
    url: str,
    body: bytes,
    *,
    clients: int,
    seconds: float,
    server_cpu_seconds: Callable[[], float],
    polite: bool = False,
    probe_interval: float = 0.5,
    probe_timeout: float = 10.0,
    onset_timeout: float | None = None,
    cpu: int | None = None,
) -> ProbeRun:
    """POST `body` to /predict from `clients` connections for `seconds`; probe /health meanwhile.

    The onset probe goes once the clients have their connections (and may take `onset_timeout`,
    by default half the load's time); the others
    follow one another `probe_interval` apart (at once after a slower one) until a second before
    the load ends. `server_cpu_seconds` reads the server's CPU time so far; `polite` picks the
    clients that honour Retry-After instead of wrk.
    """
    results: list[Load] = []
    errors: list[BaseException] = []
    drive = polite_load if polite else wrk_load

    connected = threading.Event()

    def load() -> None:
        try:
            results.append(drive(url + "/predict", body, clients, seconds, cpu, connected))
        except BaseException as exc:  # handed to the caller's thread below
            errors.append(exc)
        finally:
            connected.set()

    def probe(sent: float, timeout: float) -> Probe:
        before = server_cpu_seconds()
        wall = probe_once(url, "/health", timeout)
        return Probe(sent, wall, math.inf if math.isinf(wall) else server_cpu_seconds() - before)

    wrk = threading.Thread(target=load, name="wrk")
    started = time.monotonic()
    wrk.start()
    probes = []
    try:
        connected.wait()  # the clients' connections first
        onset = probe(time.monotonic() - started, onset_timeout or seconds / 2)
        while wrk.is_alive() and (sent := time.monotonic() - started) < seconds - 1.0:
            probes.append(probe(sent, probe_timeout))
            time.sleep(max(0.0, probe_interval - probes[-1].wall))
    finally:
        wrk.join()
    if errors:
        raise errors[0]
    if not probes:
        raise RuntimeError(
            f"the onset probe took {onset.wall:.1f} s of the {seconds:g} s of load, "
            "which left no time to probe the sustained load: make the load longer"
        )
    return ProbeRun(onset, probes, results[0])


def settings_list(text: str) -> list[int]:
    """`0,4,8` -> [0, 4, 8] (MAX_CONCURRENCY values; 0 means unlimited)."""
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or min(values) < 0:
        raise ValueError(f"expected MAX_CONCURRENCY values like 0,4,8: {text!r}")
    return values


def summary_row(
    setting: int, clients: str, run: ProbeRun, liveness_timeout: float
) -> dict[str, float | int | str]:
    """One run's figures, as written to the JSON result and the table."""
    per_second = 1 / run.load.seconds if run.load.seconds else 0.0
    return {
        "max_concurrency": setting,
        "clients": clients,
        "onset_wall_s": run.onset.wall,
        "probes": len(run.probes),
        "probe_wall_p50_s": run.percentile(0.50),
        "probe_wall_max_s": run.percentile(1.0),
        "probes_over_timeout": run.over(liveness_timeout),
        "probe_cpu_p50_s": run.percentile(0.50, cpu=True),
        "probe_cpu_max_s": run.percentile(1.0, cpu=True),
        "predict_ok_per_s": run.load.ok * per_second,
        "predict_shed_per_s": run.load.shed * per_second,
        "predict_other": run.load.other,
    }


def seconds_text(value: float) -> str:
    return "failed" if math.isinf(value) else f"{value:.2f} s"


def table_rows(rows: Sequence[dict[str, float | int | str]]) -> list[list[str]]:
    return [
        [
            "unlimited (0)" if r["max_concurrency"] == 0 else str(r["max_concurrency"]),
            str(r["clients"]),
            seconds_text(float(r["onset_wall_s"])),
            seconds_text(float(r["probe_wall_p50_s"])),
            seconds_text(float(r["probe_wall_max_s"])),
            f"{r['probes_over_timeout']} of {r['probes']}",
            seconds_text(float(r["probe_cpu_p50_s"])),
            seconds_text(float(r["probe_cpu_max_s"])),
            f"{float(r['predict_ok_per_s']):,.0f}/s",
            f"{float(r['predict_shed_per_s']):,.0f}/s",
        ]
        for r in rows
    ]


TABLE_HEADERS = [
    "MAX_CONCURRENCY",
    "Clients",
    "Onset",
    "/health p50",
    "/health max",
    "Over the timeout",
    "CPU ahead p50",
    "CPU ahead max",
    "/predict 200s",
    "/predict 503s",
]
