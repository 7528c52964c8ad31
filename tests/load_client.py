"""A load generator in its own process: `python -m tests.load_client URL OUT STOP_FILE`.

Posts one-row predictions back to back (bounded: at most MAX_SECONDS, or until STOP_FILE exists)
and writes one line per request to OUT: monotonic time, status, model version.
"""

import sys
import time
from pathlib import Path

import httpx

from tests.samples import SETOSA as ROW

MAX_SECONDS = 120


def main(url: str, out: Path, stop_file: Path) -> int:
    deadline = time.monotonic() + MAX_SECONDS
    lines = []
    with httpx.Client(timeout=10) as client:
        while time.monotonic() < deadline and not stop_file.exists():
            try:
                response = client.post(url + "/predict", json={"features": ROW})
                version = (
                    response.json().get("model_version", "-")
                    if response.status_code == 200
                    else "-"
                )
                lines.append(f"{time.monotonic():.6f} {response.status_code} {version}")
            except httpx.HTTPError as exc:
                lines.append(f"{time.monotonic():.6f} error {type(exc).__name__}")
    out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])))
