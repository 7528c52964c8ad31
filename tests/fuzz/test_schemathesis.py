"""Schemathesis against a real server's own /openapi.json: every route, every check.

No 5xx, no answer that breaks the documented schema, status codes, content types or headers, and
the documented bearer auth really enforced. FUZZ_EXAMPLES sets the examples per operation (a few
hundred cases in all by default; `make fuzz` runs many more).
"""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import TrainedStore
from tests.integration.checks import server_errors
from tests.processes import ServerProcess, model_server

pytestmark = [pytest.mark.integration, pytest.mark.fuzz]

CONFIG = Path(__file__).with_name("schemathesis.toml")
KEY = "fuzz-key-0123456789"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
# A time budget makes schemathesis keep fuzzing until it is spent; unset, the examples bound it.
MAX_SECONDS = os.environ.get("FUZZ_MAX_SECONDS")


@pytest.fixture(
    scope="module",
    params=[("iris-classifier", True), ("diabetes-regressor", False)],
    ids=["iris-with-api-keys", "diabetes-open"],
)
def server(
    request: pytest.FixtureRequest,
    trained_store: TrainedStore,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerProcess, bool]]:
    name, with_keys = request.param
    env = {
        "MLFLOW_TRACKING_URI": trained_store.tracking_uri,
        "MODEL_URI": f"models:/{name}@production",
        "MAX_BATCH": "20",
        "MAX_BODY_BYTES": "65536",
    }
    if with_keys:
        env["API_KEYS"] = KEY
        # One server records, so /feedback and /quality are fuzzed on; the other, off (404).
        env["RECORD_PREDICTIONS"] = "true"
        env["PREDICTION_STORE_URI"] = f"sqlite:///{tmp_path_factory.mktemp('fuzz-store')}/p.db"
    with model_server(env, tmp_path_factory.mktemp("fuzz-logs")) as process:
        yield process, with_keys


def test_schemathesis_finds_nothing(server: tuple[ServerProcess, bool], tmp_path: Path) -> None:
    process, with_keys = server
    st = Path(sys.executable).with_name("st")
    command = [
        str(st),
        "--config-file",
        str(CONFIG),
        "--no-color",
        "run",
        f"{process.url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(EXAMPLES),
        # One worker: hypothesis' lambda introspection is not thread-safe on Python 3.11 and
        # fails the run now and then with "AST constructor recursion depth mismatch".
        "--workers",
        "1",
        "--request-timeout",
        "10",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
    ]
    if with_keys:
        command += ["--header", f"Authorization: Bearer {KEY}"]
    if MAX_SECONDS:
        command += ["--max-time", MAX_SECONDS]
    budget = int(MAX_SECONDS or 0) + 60 + EXAMPLES * 4
    result = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=budget, check=False
    )  # cwd: schemathesis writes a .schemathesis/ cache there
    summary = result.stdout[-6000:]
    assert result.returncode == 0, f"{summary}\n{result.stderr[-2000:]}"
    cases = _generated_cases(result.stdout)
    assert cases >= 150, summary  # several hundred across the two servers
    log = process.log()
    assert server_errors(log) == []


def _generated_cases(output: str) -> int:
    for line in output.splitlines():
        words = line.split()
        if len(words) >= 2 and words[1].rstrip(",") == "generated":
            return int(words[0])
    raise AssertionError(f"no case count in the schemathesis output:\n{output[-3000:]}")
