"""Servers under test as child processes: started pinned, polled until ready, measured, stopped."""

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from loadtest.wrk import pinned


class StartError(RuntimeError):
    """A server did not become ready in time."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def get(url: str, timeout: float = 2.0, headers: Mapping[str, str] | None = None) -> bytes:
    request = urllib.request.Request(url, headers=dict(headers or {}))  # noqa: S310 - http(s) URLs from the user
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        body: bytes = response.read()
        return body


def post(
    url: str, body: bytes, headers: Mapping[str, str] | None = None, timeout: float = 10.0
) -> bytes:
    request = urllib.request.Request(  # noqa: S310
        url, data=body, headers={"Content-Type": "application/json", **(headers or {})}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        answer: bytes = response.read()
        return answer


class Service:
    """One server process (and whatever it spawns, in its own process group)."""

    def __init__(
        self,
        name: str,
        command: list[str],
        *,
        port: int,
        ready_path: str,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cpu: int | None = None,
        cwd: Path | None = None,
        any_answer: bool = False,
    ) -> None:
        self.name = name
        self.url = f"http://127.0.0.1:{port}"
        self.ready_path = ready_path
        self.any_answer = any_answer  # ready on any HTTP answer, not only 200
        self.log_path = log_path
        self.started = time.perf_counter()
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                pinned(command, cpu),
                env={**os.environ, **(env or {})},
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a process group of its own, stopped as one
            )
        self.ready_seconds: float | None = None

    def wait_ready(self, timeout: float, poll: float = 0.01) -> float:
        """Poll the ready path; return seconds from process start to the first 200."""
        deadline = self.started + timeout
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise StartError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                get(self.url + self.ready_path, timeout=1.0)
            except urllib.error.HTTPError:
                if not self.any_answer:
                    time.sleep(poll)
                    continue
            except (urllib.error.URLError, OSError):
                time.sleep(poll)
                continue
            self.ready_seconds = time.perf_counter() - self.started
            return self.ready_seconds
        self.stop()
        raise StartError(f"{self.name} was not ready within {timeout:.0f}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def rss_bytes(self, peak: bool = False) -> int:
        """Resident memory of the process and its descendants (MLflow serves from a child).

        With `peak`, the sum of each process's high-water mark (VmHWM) rather than its VmRSS.
        """
        field = "VmHWM:" if peak else "VmRSS:"
        total = 0
        for pid in _tree(self.process.pid):
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith(field):
                    total += int(line.split()[1]) * 1024
        return total

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the process and its descendants.

        Unlike throughput, CPU per request hardly moves when other work shares the machine.
        """
        ticks = 0
        for pid in _tree(self.process.pid):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / os.sysconf("SC_CLK_TCK")

    def stop(self, timeout: float = 15.0) -> None:
        if self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            pass


def _tree(root: int) -> list[int]:
    """`root` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found
