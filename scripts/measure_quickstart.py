"""`make measure-quickstart`: the README's quick start on a fresh clone, timed, into a result file.

Clones this repository into a temporary directory, runs `make train` and `make serve`, asks
/predict the README's question, and writes docs/results/quickstart.json: seconds to the first
prediction, the disk the set-up used, the answer, the machine and the date. `make docs` puts
the figures into the README. The package cache is whatever this machine has (say so when quoting).
"""

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from loadtest import machine  # noqa: E402 - the repository root is on the path only now

OUT = ROOT / "docs" / "results" / "quickstart.json"
QUESTION = {
    "features": {
        "sepal length (cm)": 5.1,
        "sepal width (cm)": 3.5,
        "petal length (cm)": 1.4,
        "petal width (cm)": 0.2,
    }
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _megabytes(path: Path) -> float:
    if not path.exists():
        return 0.0
    output = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True)
    return int(output.stdout.split()[0]) / 1e6


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        started = time.monotonic()
        train = subprocess.run(["make", "train"], cwd=clone, capture_output=True, text=True)
        if train.returncode != 0:
            print(train.stdout[-2000:], train.stderr[-2000:], file=sys.stderr)
            return 1
        trained = time.monotonic() - started
        port = _free_port()
        server = subprocess.Popen(
            ["make", "serve", f"PORT={port}"],
            cwd=clone,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            answer = None
            deadline = time.monotonic() + 120
            while answer is None and time.monotonic() < deadline:
                try:
                    request = urllib.request.Request(
                        f"http://127.0.0.1:{port}/predict",
                        data=json.dumps(QUESTION).encode(),
                        headers={"Content-Type": "application/json"},
                    )
                    with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310
                        answer = json.loads(response.read())
                except OSError:
                    time.sleep(0.1)
            first_prediction = time.monotonic() - started
        finally:
            subprocess.run(["pkill", "-TERM", "-g", str(server.pid)], check=False)
            server.wait(30)
        if answer is None:
            print("error: the server never answered /predict", file=sys.stderr)
            return 1
        result = {
            "command": "make measure-quickstart",
            "machine": machine.describe(),
            "seconds_to_trained": round(trained, 1),
            "seconds_to_first_prediction": round(first_prediction, 1),
            "disk_mb": {
                ".venv": round(_megabytes(clone / ".venv"), 1),
                ".mlflow": round(_megabytes(clone / ".mlflow"), 1),
                ".tools": round(_megabytes(clone / ".tools"), 1),
            },
            "answer": {k: answer[k] for k in ("prediction", "model_version") if k in answer},
            "uv_cache": "warm"
            if shutil.which("uv") or (Path.home() / ".cache/uv").exists()
            else "cold",
        }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
