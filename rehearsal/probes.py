"""Probes as the kubelet runs them: the startup probe first, then liveness and readiness, each on
its own period, timeout and thresholds, against the pod's IP.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Kubernetes' defaults for unset probe fields.
DEFAULTS = {
    "initialDelaySeconds": 0,
    "periodSeconds": 10,
    "timeoutSeconds": 1,
    "successThreshold": 1,
    "failureThreshold": 3,
}


@dataclass(frozen=True)
class Probe:
    """One probe: what it checks (`http`, `tcp` or `exec`) and its timings."""

    action: str
    port: int | None
    path: str
    command: tuple[str, ...]
    headers: tuple[tuple[str, str], ...]
    initial_delay: float
    period: float
    timeout: float
    success_threshold: int
    failure_threshold: int

    def describe(self) -> str:
        target = {
            "http": f"GET :{self.port}{self.path}",
            "tcp": f"tcp :{self.port}",
            "exec": " ".join(self.command),
        }[self.action]
        return (
            f"{target} every {self.period:g}s, timeout {self.timeout:g}s, "
            f"{self.failure_threshold} failures"
        )

    def budget(self) -> float:
        """Longest time this probe may keep failing before the kubelet acts on it."""
        return self.initial_delay + self.period * self.failure_threshold + self.timeout


def _port(value: Any, ports: Mapping[str, int]) -> int:
    if isinstance(value, int):
        return value
    if str(value).isdigit():
        return int(value)
    if value not in ports:
        raise ValueError(f"probe port {value!r} names no container port")
    return ports[value]


def parse_probe(spec: Mapping[str, Any], ports: Mapping[str, int]) -> Probe:
    """A probe from its rendered spec; a named port is resolved against the container's ports."""
    timings = {key: spec.get(key, default) for key, default in DEFAULTS.items()}
    if "httpGet" in spec:
        get = spec["httpGet"]
        if get.get("scheme", "HTTP") != "HTTP":
            raise ValueError("only HTTP probes are supported")
        action, port, path = "http", _port(get["port"], ports), get.get("path", "/")
        headers = tuple((h["name"], h["value"]) for h in get.get("httpHeaders") or [])
        command: tuple[str, ...] = ()
    elif "tcpSocket" in spec:
        action, port, path, headers, command = (
            "tcp",
            _port(spec["tcpSocket"]["port"], ports),
            "",
            (),
            (),
        )
    elif "exec" in spec:
        action, port, path, headers = "exec", None, "", ()
        command = tuple(spec["exec"]["command"])
    else:
        raise ValueError(f"probe {sorted(spec)} is not supported")
    return Probe(
        action=action,
        port=port,
        path=path,
        command=command,
        headers=headers,
        initial_delay=float(timings["initialDelaySeconds"]),
        period=float(timings["periodSeconds"]),
        timeout=float(timings["timeoutSeconds"]),
        success_threshold=int(timings["successThreshold"]),
        failure_threshold=int(timings["failureThreshold"]),
    )


def check_once(
    probe: Probe, ip: str, run_exec: Callable[[tuple[str, ...], float], int] | None = None
) -> str | None:
    """Run the probe once; None on success, else why it failed (as the kubelet would say)."""
    try:
        if probe.action == "http":
            assert probe.port is not None
            conn = http.client.HTTPConnection(ip, probe.port, timeout=probe.timeout)
            try:
                headers = {"User-Agent": "kube-probe/1.35", "Accept": "*/*"}
                headers.update(dict(probe.headers))
                conn.request("GET", probe.path, headers=headers)
                status = conn.getresponse().status
            finally:
                conn.close()
            # The kubelet counts 200-399 as success.
            return None if 200 <= status < 400 else f"HTTP probe failed with statuscode: {status}"
        if probe.action == "tcp":
            assert probe.port is not None
            with socket.create_connection((ip, probe.port), timeout=probe.timeout):
                return None
        assert run_exec is not None
        code = run_exec(probe.command, probe.timeout)
        return None if code == 0 else f"command exited with {code}"
    except (OSError, http.client.HTTPException) as exc:
        return f"{type(exc).__name__}: {exc}"


@dataclass
class ProbeRecord:
    """What one probe saw over the rehearsal."""

    probe: Probe
    checks: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    last_error: str | None = None


@dataclass
class PodProbes:
    """The kubelet's view of one container: started, ready, or failed (would be restarted)."""

    records: dict[str, ProbeRecord] = field(default_factory=dict)
    started_at: float = field(default_factory=time.monotonic)
    started: bool = False
    ready: bool = False
    ready_after: float | None = None
    failed: str | None = None


class Prober(threading.Thread):
    """Polls one container's probes until stopped, like the kubelet's probe workers."""

    def __init__(
        self,
        probes: Mapping[str, Probe],
        ip: str,
        run_exec: Callable[[tuple[str, ...], float], int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(daemon=True)
        self.ip = ip
        self.run_exec = run_exec
        self.clock = clock
        self.state = PodProbes({k: ProbeRecord(p) for k, p in probes.items()}, clock())
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def ready_deadline(self) -> float:
        """Seconds after start by which the probes' own budgets say the pod must be ready."""
        probes = {k: r.probe for k, r in self.state.records.items()}
        total = probes["startup"].budget() if "startup" in probes else 0.0
        if "readiness" in probes:
            total += probes["readiness"].budget()
        return max(total, 1.0)

    def _tick(self, kind: str) -> None:
        record = self.state.records[kind]
        error = check_once(record.probe, self.ip, self.run_exec)
        record.checks += 1
        if error is None:
            record.consecutive_failures = 0
            record.consecutive_successes += 1
        else:
            record.failures += 1
            record.consecutive_failures += 1
            record.consecutive_successes = 0
            record.last_error = error
        state = self.state
        if kind == "startup":
            if record.consecutive_successes >= record.probe.success_threshold:
                state.started = True
            elif record.consecutive_failures >= record.probe.failure_threshold:
                state.failed = f"startup probe failed {record.checks} times: {error}"
        elif kind == "liveness":
            if record.consecutive_failures >= record.probe.failure_threshold:
                state.failed = f"liveness probe failed {record.consecutive_failures} times: {error}"
        elif record.consecutive_successes >= record.probe.success_threshold:
            if not state.ready:
                state.ready = True
                state.ready_after = self.clock() - state.started_at
        elif record.consecutive_failures >= record.probe.failure_threshold:
            state.ready = False

    def run(self) -> None:
        state = self.state
        records = state.records
        if "startup" not in records:
            state.started = True
        start = state.started_at
        due: dict[str, float] = {}
        for kind, record in records.items():
            due[kind] = start + record.probe.initial_delay
        if "readiness" not in records and "startup" not in records:
            state.ready, state.ready_after = True, 0.0
        while not self._stop_event.is_set() and state.failed is None:
            now = self.clock()
            active = ["startup"] if not state.started else [k for k in due if k != "startup"]
            if not active:
                if "readiness" not in records and not state.ready:
                    state.ready, state.ready_after = True, now - start
                self._stop_event.wait(0.2)
                continue
            kind = min(active, key=lambda k: due[k])
            wait = due[kind] - now
            if wait > 0:
                self._stop_event.wait(min(wait, 0.2))
                continue
            self._tick(kind)
            due[kind] = max(due[kind] + records[kind].probe.period, self.clock())
            if kind == "startup" and state.started:
                # Liveness and readiness start once the startup probe has succeeded; their
                # initial delays count from the container's start, as the kubelet's do.
                now = self.clock()
                for other in due:
                    if other != "startup":
                        due[other] = max(now, start + records[other].probe.initial_delay)
                if "readiness" not in records:
                    state.ready, state.ready_after = True, now - start
