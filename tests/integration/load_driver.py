"""Load from another process: `python -m tests.integration.load_driver URL OUT SECONDS THREADS MODE`.

Each thread posts /predict in a loop until SECONDS pass or the server has refused connections for
a second. An answer other than 200, or an error after the connection was made, is a failure; a
refused connection is not (the request was never accepted). Writes a JSON summary to OUT.

MODE "balancer" behaves like a Kubernetes Service in front of the pod: it polls /ready, and
once it has seen 503 it stops sending new requests after ENDPOINT_LAG seconds (the time the
endpoint removal takes to propagate). MODE "blind" keeps sending until the port is closed.
"""

import sys
import threading
import time
from collections import Counter

import httpx
import orjson

from tests.samples import SETOSA

BODY = orjson.dumps({"features": SETOSA})


ENDPOINT_LAG = 1.0


def main(url: str, out: str, seconds: float, threads: int, mode: str) -> None:
    outcomes: Counter[str] = Counter()
    ok_times: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    end = time.time() + seconds
    routed = threading.Event()
    routed.set()

    def balancer() -> None:
        while time.time() < end:
            try:
                ready = httpx.get(url + "/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                ready = False
            if not ready:
                time.sleep(ENDPOINT_LAG)
                routed.clear()
                return
            time.sleep(0.1)

    def worker() -> None:
        refused_since: float | None = None
        with httpx.Client(timeout=30) as client:
            while time.time() < end and routed.is_set():
                try:
                    response = client.post(
                        url + "/predict", content=BODY, headers={"Content-Type": "application/json"}
                    )
                except httpx.ConnectError:
                    now = time.time()
                    refused_since = refused_since or now
                    with lock:
                        outcomes["refused"] += 1
                    if now - refused_since > 1:
                        return
                    time.sleep(0.01)
                    continue
                except httpx.HTTPError as exc:
                    with lock:
                        outcomes["failed"] += 1
                        failures.append(f"{time.time():.3f} {exc!r}")
                    continue
                refused_since = None
                with lock:
                    if response.status_code == 200:
                        outcomes["ok"] += 1
                        ok_times.append(time.time())
                    else:
                        outcomes["failed"] += 1
                        failures.append(f"{response.status_code} {response.text[:200]}")

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    if mode == "balancer":
        pool.append(threading.Thread(target=balancer))
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    summary = {
        "outcomes": dict(outcomes),
        "failures": failures[:20],
        "last_ok": max(ok_times, default=0.0),
        "first_ok": min(ok_times, default=0.0),
    }
    with open(out, "wb") as file:
        file.write(orjson.dumps(summary))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
