"""Each hostile input or careless setting, against a real server on loopback: what it costs.

    python -m loadtest.hardening [--before DIR] [--out docs/security-figures.md]

Runs every attack against this checkout's server and, with --before, against the server in DIR
(an older checkout, e.g. `git archive <commit> | tar -x -C DIR`), with the same Python
environment, and writes a table of the figures with the machine and date. Every attack has a
fixed count and time bound; the largest sends about 1 GiB over loopback (64 connections of 16 MiB
headers). `make bench-hardening` runs it; the machine is shared, so read the figures as
magnitudes, not to the last digit.
"""

import argparse
import contextlib
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson

from loadtest.machine import describe

REPO = Path(__file__).resolve().parent.parent
ROW = {"sepal length (cm)": 5.1, "sepal width (cm)": 3.5, "petal length (cm)": 1.4,
       "petal width (cm)": 0.2}  # fmt: skip
OIP = "/v2/models/iris-classifier/infer"
# Methods the HTTP parser (llhttp) accepts besides the standard ones.
ODD_METHODS = ("PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "SEARCH",
               "PURGE", "LINK", "UNLINK", "REPORT", "MKACTIVITY", "CHECKOUT", "MERGE",
               "M-SEARCH", "NOTIFY", "SUBSCRIBE", "UNSUBSCRIBE", "ACL", "BIND", "UNBIND",
               "REBIND", "MKCALENDAR", "SOURCE", "QUERY", "TRACE", "CONNECT")  # fmt: skip
PATHS = ("/health", "/ready", "/predict", "/model/info", "/drift", "/metrics", "/v2",
         "/v2/health/live", "/v2/health/ready", "/v2/models/m", "/v2/models/m/ready", OIP,
         "/openapi.json", "/docs", "/nowhere")  # fmt: skip


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    @property
    def address(self) -> tuple[str, int]:
        return "127.0.0.1", int(self.url.rsplit(":", 1)[1])

    def status(self, field: str) -> int:
        """VmRSS or VmHWM (peak) of the process, in bytes."""
        text = Path(f"/proc/{self.process.pid}/status").read_text()
        match = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
        return int(match.group(1)) * 1024 if match else 0

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def server(source: Path, env: Mapping[str, str], files: int | None = None,
           wait: str = "/ready") -> Iterator[Server]:  # fmt: skip
    port = free_port()
    log_path = Path(f"/tmp/hardening-{port}.log")  # noqa: S108 - a throwaway log
    full = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "SHUTDOWN_DELAY_SECONDS": "0",
            "MLFLOW_TRACKING_URI": f"sqlite:///{REPO / '.mlflow' / 'mlflow.db'}", **env}  # fmt: skip

    def limit() -> None:
        if files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (files, files))

    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "server"], cwd=source, env=full, stdout=log,
            stderr=subprocess.STDOUT, preexec_fn=limit,
        )  # fmt: skip
    running = Server(process, f"http://127.0.0.1:{port}", log_path)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(running.url + wait, timeout=2).status_code < 500:
                    break
            time.sleep(0.1)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log_path.unlink(missing_ok=True)


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def start_up(source: Path, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    full = {"PATH": os.environ["PATH"], "PORT": str(free_port()), "HOST": "127.0.0.1", **env}
    try:
        return subprocess.run(
            [sys.executable, "-m", "server"], cwd=source, env=full, capture_output=True,
            text=True, timeout=8, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:  # it started and kept running
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return subprocess.CompletedProcess(exc.cmd, -1, out, "")


# --- the attacks ----------------------------------------------------------------------------------


def amplification(source: Path) -> str:
    """1 MB of OIP request naming one output thousands of times, 1000 rows."""
    rows = [list(ROW.values())] * 1000
    payload: dict[str, object] = {"inputs": [{"name": "input", "shape": [1000, 4],
                                              "datatype": "FP32", "data": rows}]}  # fmt: skip
    size = len(orjson.dumps(payload))
    entry = len(orjson.dumps({"name": "probabilities"})) + 1
    payload["outputs"] = [{"name": "probabilities"}] * ((1_000_000 - size) // entry)
    body = orjson.dumps(payload)
    with server(source, {}) as s:
        rss = s.status("VmRSS")
        received = 0
        with httpx.stream("POST", s.url + OIP, content=body, timeout=120,
                          headers={"Content-Type": "application/json"}) as response:  # fmt: skip
            for chunk in response.iter_raw():
                received += len(chunk)
        return (
            f"{len(body) / 1e6:.1f} MB request: {response.status_code}, "
            f"{received:,} bytes of answer; RSS {mib(rss)} -> peak {mib(s.status('VmHWM'))}"
        )


def huge_headers(source: Path) -> str:
    """64 connections each sending 16 MiB of one header line, never finished."""
    statuses: list[str] = []
    with server(source, {}) as s:
        rss = s.status("VmRSS")
        sockets: list[socket.socket] = []

        def attack() -> None:
            sock = socket.create_connection(s.address, timeout=30)
            sockets.append(sock)
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Padding: ")
            try:
                for _ in range(256):
                    sock.sendall(b"a" * 65536)
            except OSError:
                pass
            sock.settimeout(1)
            try:
                statuses.append(sock.recv(64).split(b" ")[1].decode() or "closed")
            except (OSError, IndexError):
                statuses.append("no answer")

        threads = [threading.Thread(target=attack) for _ in range(64)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        held = s.status("VmRSS")  # the attackers' connections are still open here
        started = time.perf_counter()
        health = httpx.get(s.url + "/health", timeout=30).status_code
        health_ms = (time.perf_counter() - started) * 1000
        for sock in sockets:
            sock.close()
        answers = ", ".join(f"{statuses.count(a)}x {a}" for a in sorted(set(statuses)))
        return (
            f"answers: {answers}; RSS {mib(rss)} -> {mib(held)} with the connections open, "
            f"peak {mib(s.status('VmHWM'))}; /health then {health} in {health_ms:.0f} ms"
        )


def idle_connections(source: Path) -> str:
    """1000 connections that send nothing, checked 12 s later (header deadline 10 s)."""
    with server(source, {}) as s:
        idle = [socket.create_connection(s.address, timeout=5) for _ in range(1000)]
        time.sleep(12)
        still_open = 0
        for sock in idle:
            sock.setblocking(False)
            try:
                still_open += sock.recv(1, socket.MSG_PEEK) != b""
            except BlockingIOError:
                still_open += 1
            except OSError:
                pass
            sock.close()
        return f"{still_open} of 1000 still open after 12 s"


def descriptor_limit(source: Path) -> str:
    """1500 idle connections against a server limited to 1024 descriptors, polling its registry."""
    env = {"MODEL_POLL_SECONDS": "0.5"}
    with server(source, env, files=1024) as s:
        held = []
        for _ in range(1500):
            with contextlib.suppress(OSError):
                held.append(socket.create_connection(s.address, timeout=2))
        time.sleep(2)
        probes = []
        for _ in range(5):
            try:
                probes.append(str(httpx.get(s.url + "/health", timeout=3).status_code))
            except httpx.HTTPError as exc:
                probes.append(type(exc).__name__)
        for sock in held:
            sock.close()
        log = s.log()
    registry = log.count("unable to open database file") + log.count("Too many open files")
    limit = "connection limit reached" in log
    return (
        f"/health x5: {', '.join(probes)}; registry errors in the log: {registry}; "
        f"'connection limit reached' logged: {'yes' if limit else 'no'}"
    )


def odd_methods(source: Path) -> str:
    """Every method the parser knows beyond the standard ones, on every route, once."""
    with server(source, {}) as s:
        before = len(httpx.get(s.url + "/metrics").content)
        with httpx.Client(base_url=s.url, timeout=10) as client:
            for method in ODD_METHODS:
                for path in PATHS:
                    with contextlib.suppress(httpx.HTTPError):
                        client.request(method, path)
            scrapes = []
            for _ in range(10):
                started = time.perf_counter()
                after = len(client.get("/metrics").content)
                scrapes.append((time.perf_counter() - started) * 1000)
        count = len(ODD_METHODS) * len(PATHS)
        return (
            f"{count} requests: /metrics {before / 1000:,.0f} kB -> {after / 1000:,.0f} kB, "
            f"scrape median {statistics.median(scrapes):.1f} ms"
        )


def lone_surrogate(source: Path) -> str:
    body = orjson.dumps({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                                     "data": list(ROW.values())}]})[:-1] + b', "id": "\\ud800"}'  # fmt: skip
    with server(source, {}) as s:
        response = httpx.post(s.url + OIP, content=body,
                              headers={"Content-Type": "application/json"})  # fmt: skip
        return f"{response.status_code} {response.text[:70]}"


def host_redirect(source: Path) -> str:
    with server(source, {}) as s, socket.create_connection(s.address, timeout=5) as sock:
        sock.sendall(b"GET /health/ HTTP/1.1\r\nHost: evil.example\r\n\r\n")
        head = sock.recv(4096).split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    location = next((h for h in head if h.lower().startswith("location:")), "no Location")
    return f"GET /health/ with Host: evil.example: {head[0].split(' ', 1)[1]}, {location}"


def nan_body(source: Path) -> str:
    """Server CPU for a 1 MiB JSON array ending in NaN, against the same ending in 1.5."""
    plain = b"[" + b"1.5," * (2**20 // 4 - 1) + b"1.5]"
    poisoned = plain[:-4] + b"NaN]"
    figures = {}
    with server(source, {"MAX_BODY_BYTES": str(2**21)}) as s, httpx.Client() as client:
        for name, body in (("plain", plain), ("NaN", poisoned)):
            for _ in range(3):  # warm-up
                client.post(s.url + "/predict", content=body,
                            headers={"Content-Type": "application/json"})  # fmt: skip
            started = s.cpu_seconds()
            for _ in range(30):
                status = client.post(s.url + "/predict", content=body,
                                     headers={"Content-Type": "application/json"}).status_code  # fmt: skip
            figures[name] = ((s.cpu_seconds() - started) / 30 * 1000, status)
    return (
        f"ending in 1.5: {figures['plain'][0]:.1f} ms CPU ({figures['plain'][1]}); "
        f"ending in NaN: {figures['NaN'][0]:.1f} ms CPU ({figures['NaN'][1]})"
    )


def empty_key_file(source: Path) -> str:
    path = Path("/tmp/hardening-empty-keys")  # noqa: S108
    path.write_text("\n , \n")
    try:
        result = start_up(source, {"API_KEYS_FILE": str(path), "MODEL_URI": "/nonexistent"})
    finally:
        path.unlink()
    if result.returncode == -1:
        return "started, with no key required and nothing logged about it"
    return f"exit {result.returncode}: {result.stderr.strip()}"


def tracking_credentials(source: Path) -> str:
    uri = f"http://admin:S3cret-pass@127.0.0.1:{free_port()}"
    env = {"MLFLOW_TRACKING_URI": uri, "REGISTRY_TIMEOUT_SECONDS": "1"}
    with server(source, env, wait="/health") as s:
        time.sleep(3)
        ready = httpx.get(s.url + "/ready").json()
        log = s.log()
    return (
        f"/ready reason {str(ready.get('reason'))[:110]!r}; password in the log "
        f"{log.count('S3cret-pass')} times"
    )


def huge_drift_window(source: Path) -> str:
    result = start_up(source, {"DRIFT_WINDOW": "2000000000"})
    if result.returncode != -1:
        return f"exit {result.returncode}: {result.stderr.strip()}"
    with server(source, {"DRIFT_WINDOW": "2000000000"}) as s:
        drift = httpx.get(s.url + "/drift").json()
    return f"started; /drift: {str(drift)[:100]}"


def iris_rows() -> list[dict[str, float]]:
    from training.datasets import load_dataset

    iris = load_dataset("iris")
    return [dict(zip(iris.features, map(float, r), strict=True)) for r in iris.X]


def drift_after(rows: int) -> Callable[[Path], str]:
    def measure(source: Path) -> str:
        data = iris_rows()
        picks = [data[(i * 37) % len(data)] for i in range(rows)]  # spread over the classes
        with server(source, {"DRIFT_INTERVAL_SECONDS": "0.2"}) as s:
            for start in range(0, rows, 5):
                httpx.post(s.url + "/predict", json={"instances": picks[start : start + 5]})
            time.sleep(0.5)
            report = httpx.get(s.url + "/drift").json()
            exported = "model_feature_drift_psi{" in httpx.get(s.url + "/metrics").text
        values = [f["psi"] for f in report.get("features", {}).values() if f["psi"] is not None]
        worst = f"max feature PSI {max(values):.2f}" if values else "no PSI"
        return f"{report['status']!r}, {worst}, exported: {'yes' if exported else 'no'}"

    return measure


def one_big_request(source: Path) -> str:
    """300 in-distribution rows, 5 a request; then one 1000-row request far off."""
    rows = iris_rows()

    def max_psi(report: dict[str, object]) -> float:
        features = report["features"]
        assert isinstance(features, dict)
        return max(float(f["psi"] or 0) for f in features.values())

    env = {"DRIFT_INTERVAL_SECONDS": "0.2", "DRIFT_MIN_ROWS": "1"}
    with server(source, env) as s, httpx.Client(base_url=s.url) as client:
        for start in range(0, 300, 5):
            picks = [rows[(start * 7 + i * 31) % len(rows)] for i in range(5)]
            client.post("/predict", json={"instances": picks})
        before = max_psi(client.get("/drift").json())
        far = dict.fromkeys(rows[0], 7.9)
        client.post("/predict", json={"instances": [far] * 1000})
        after = max_psi(client.get("/drift").json())
    return f"max feature PSI {before:.2f} -> {after:.2f} after the 1000-row request"


def metadata_without_key(source: Path) -> str:
    with server(source, {"API_KEYS": "k-1"}) as s:
        codes = {p: httpx.get(s.url + p).status_code for p in ("/model/info", "/drift",
                                                                "/openapi.json", "/v2")}  # fmt: skip
    return ", ".join(f"{p} {c}" for p, c in codes.items())


def key_rotation(source: Path) -> str:
    path = Path("/tmp/hardening-keys")  # noqa: S108
    path.write_text("old-key\n")
    env = {"API_KEYS_FILE": str(path), "API_KEYS_RELOAD_SECONDS": "1"}
    try:
        with server(source, env) as s:
            path.write_text("new-key\n")
            started = time.monotonic()
            while time.monotonic() - started < 15:
                answer = httpx.post(s.url + "/predict", json={"features": ROW},
                                    headers={"Authorization": "Bearer new-key"})  # fmt: skip
                if answer.status_code == 200:
                    return f"new key accepted {time.monotonic() - started:.1f} s after the rewrite"
                time.sleep(0.1)
            return f"new key still {answer.status_code} 15 s after the rewrite (needs a restart)"
    finally:
        path.unlink(missing_ok=True)


ATTACKS: list[tuple[str, Callable[[Path], str]]] = [
    ("1. OIP outputs named 36,000 times", amplification),
    ("2. 64 x 16 MiB unfinished headers", huge_headers),
    ("3. idle connections after the deadline", idle_connections),
    ("3. at the descriptor limit (1024)", descriptor_limit),
    ("4. /metrics after odd methods", odd_methods),
    ("5. lone surrogate in the OIP id", lone_surrogate),
    ("6. trailing-slash redirect", host_redirect),
    ("7. 1 MiB body ending in NaN", nan_body),
    ("8. API_KEYS_FILE with no keys", empty_key_file),
    ("9. credentials in MLFLOW_TRACKING_URI", tracking_credentials),
    ("10. DRIFT_WINDOW=2000000000", huge_drift_window),
    ("17. drift after 1 request", drift_after(1)),
    ("17. drift after 30 rows (6 requests)", drift_after(30)),
    ("18. one 1000-row request", one_big_request),
    ("keys set: metadata without a key", metadata_without_key),
    ("key file rewritten while serving", key_rotation),
]


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, help="an older checkout to measure as well")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "security-figures.md")
    parser.add_argument("--only", help="run the attacks whose name contains this")
    args = parser.parse_args()
    sources = {"after": REPO} if args.before is None else {"before": args.before, "after": REPO}
    rows = []
    for name, attack in ATTACKS:
        if args.only and args.only not in name:
            continue
        figures = {}
        for label, source in sources.items():
            try:
                figures[label] = attack(source)
            except Exception as exc:  # a failed measurement is a figure too
                figures[label] = f"measurement failed: {type(exc).__name__}: {exc}"[:200]
            print(f"{name} [{label}]: {figures[label]}", flush=True)
        rows.append((name, figures))
    machine = describe()
    lines = [
        "# Hostile input and careless settings: measured",
        "",
        "Written by `make bench-hardening` (`python -m loadtest.hardening"
        + (" --before <older checkout>" if args.before else "")
        + "`); do not edit by hand.",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['os']}, Python "
        f"{machine['python']}; {machine['date']}; load average at start "
        f"{machine['load_average_at_start']} (a shared machine: magnitudes, not digits).",
        "",
    ]
    if args.before:
        lines += ["| attack | before | after |", "|---|---|---|"]
        lines += [f"| {n} | {cell(f['before'])} | {cell(f['after'])} |" for n, f in rows]
    else:
        lines += ["| attack | figure |", "|---|---|"]
        lines += [f"| {n} | {cell(f['after'])} |" for n, f in rows]
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
