"""Production's request limits keep the liveness probe answering under the heaviest load they
allow: clients posting the largest batch production accepts, back to back, each waiting as long
as a 503's Retry-After asks (the contract of the load shedding).

With the limit the number of clients does not matter (past it they are shed), while without it
the work a probe waits behind grows with them. The test uses 400 clients, twice those that put
/health past the timeout with MAX_CONCURRENCY=0 (production's old setting) on a 2-core machine,
so that the old setting fails here too on a faster or quieter machine.

The bound is the kubelet's own: it restarts the container when failureThreshold probes in a
row, periodSeconds apart, miss timeoutSeconds. So the stall when the clients' first burst
arrives must end before that could happen, and afterwards at most one probe in ten may miss the
timeout: probes ten seconds apart then miss three in a row about once in a thousand tries. That
holds twice: in wall time on this machine, and on a busy node that gives the pod only its CPU
request, where a probe takes the server's CPU time spent before answering it (the work queued
ahead of it) divided by the request. The second does not depend on what else this machine
runs. A correctness bound, not a speed target; `make bench-probes` prints the figures.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtest import payloads, servers
from loadtest.probe_latency import chart_api_values, server_env
from loadtest.probes import ProbeRun, health_under_load
from loadtest.processes import Service
from tests.conftest import TrainedStore

pytestmark = pytest.mark.integration

PRODUCTION = chart_api_values("values-production.yaml")
LIVENESS = PRODUCTION["probes"]["liveness"]
# A stall this long fails failureThreshold probes in a row: the kubelet restarts the container.
RESTART_AFTER = (LIVENESS["failureThreshold"] - 1) * LIVENESS["periodSeconds"]
CLIENTS = 400
SECONDS = RESTART_AFTER + 10
MISSES_ALLOWED = 0.1  # of the probes once the load is under way
CPU_REQUEST = PRODUCTION["resources"]["requests"]["cpu"]  # e.g. "500m"
CPU_SHARE = int(CPU_REQUEST[:-1]) / 1000 if CPU_REQUEST.endswith("m") else float(CPU_REQUEST)


@pytest.fixture
def production_server(trained_store: TrainedStore, tmp_path: Path) -> Iterator[Service]:
    """The server with production's request limits, on CPU 0 (the clients get CPU 1)."""
    limit = PRODUCTION["server"]["maxConcurrency"]
    env = {**server_env(PRODUCTION, limit), "MLFLOW_TRACKING_URI": trained_store.tracking_uri}
    service = servers.model_server("models:/iris-classifier@production", tmp_path, 0, env)
    try:
        service.wait_ready(60)
        yield service
    finally:
        service.stop()


def describe(run: ProbeRun) -> str:
    shown = ", ".join(
        f"{p.sent:.1f}s: {p.wall:.2f}s/{p.cpu:.2f}s" for p in [run.onset, *run.probes]
    )
    return f"probes (sent: wall/server CPU ahead) {shown}; load {run.load}"


def test_production_limits_keep_the_liveness_probe_within_its_timeout(
    production_server: Service,
) -> None:
    assert PRODUCTION["server"]["maxConcurrency"] > 0, "production must bound concurrency"
    timeout = LIVENESS["timeoutSeconds"]
    rows = PRODUCTION["server"]["maxBatch"]
    body = payloads.predict_batch(payloads.IRIS_FEATURES, payloads.IRIS_ROW, rows)
    assert len(body) <= PRODUCTION["server"]["maxBodyBytes"]
    run = health_under_load(
        production_server.url,
        body,
        clients=CLIENTS,
        seconds=SECONDS,
        server_cpu_seconds=production_server.cpu_seconds,
        polite=True,
        onset_timeout=RESTART_AFTER,
        cpu=1,
    )
    probes = [run.onset, *run.probes]
    first = next((i for i, p in enumerate(probes) if p.wall < timeout), None)
    assert first is not None, f"no probe answered within {timeout}s: {describe(run)}"
    assert probes[first].sent + probes[first].wall < RESTART_AFTER, describe(run)
    under_way = probes[first + 1 :]
    assert len(under_way) >= 10, describe(run)
    missed = [p for p in under_way if p.wall >= timeout]
    assert len(missed) <= MISSES_ALLOWED * len(under_way), describe(run)
    at_request = [p for p in under_way if p.cpu / CPU_SHARE >= timeout]
    assert len(at_request) <= MISSES_ALLOWED * len(under_way), describe(run)
    assert run.load.ok > 0, describe(run)
    assert run.load.shed > 0, f"the clients never reached the limit: {describe(run)}"
    assert run.load.other == 0, describe(run)
