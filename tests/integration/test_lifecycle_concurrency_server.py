"""Concurrent promotions and rollbacks against a real `mlflow server`, and its lifecycle lock.

Over REST each change holds `<model>.lifecycle-lock`: these tests run the commands as separate
processes at once, kill a holder, and leave a lock from "another machine" behind.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from tests.lifecycle_concurrency import at_once, chain_of, history_of, lifecycle_env
from tests.mlflow_server import MlflowServer
from tests.processes import REPO_ROOT
from tests.registry import reset_mlflow_globals
from training import cli
from training.registry_lock import LOCK_SUFFIX, is_lock_name

pytestmark = pytest.mark.integration

CANDIDATES = ("2", "3", "4")


@pytest.fixture(scope="module")
def api(mlflow_server: str) -> MlflowServer:
    return MlflowServer(mlflow_server, log_path=Path(os.devnull))


def _registered(api: MlflowServer, name: str) -> dict[str, object]:
    answer = httpx.get(f"{api.url}/api/2.0/mlflow/registered-models/get", params={"name": name})
    answer.raise_for_status()
    return dict(answer.json()["registered_model"])


def _aliases(api: MlflowServer, name: str) -> dict[str, str]:
    found = _registered(api, name).get("aliases", [])
    return {a["alias"]: a["version"] for a in found}  # type: ignore[attr-defined]


def _tags(api: MlflowServer, name: str) -> dict[str, str]:
    found = _registered(api, name).get("tags", [])
    return {t["key"]: t["value"] for t in found}  # type: ignore[attr-defined]


def _names(api: MlflowServer) -> list[str]:
    answer = httpx.get(f"{api.url}/api/2.0/mlflow/registered-models/search")
    return sorted(m["name"] for m in answer.json().get("registered_models", []))


@pytest.fixture
def model(api: MlflowServer, request: pytest.FixtureRequest) -> str:
    """A model of this test's own with versions 1 to 4 of one trained forest; 1 in production."""
    name = f"conc-{request.node.name.removeprefix('test_')[:40]}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", api.url)
        patch.setenv("MLFLOW_REGISTRY_URI", api.url)
        assert cli.main(["--n-estimators=5", f"--model-name={name}"]) == 0
        reset_mlflow_globals()
    first = api.model_version(name, "1")
    model_id = str(first["source"]).removeprefix("models:/")
    for _ in CANDIDATES:
        api.create_version(name, model_id, str(first["run_id"]))
    return name


def test_concurrent_promotions_lose_no_history(api: MlflowServer, model: str) -> None:
    outcomes = at_once(
        api.url, [["promote", f"--model={model}", f"--version={v}"] for v in CANDIDATES]
    )
    assert [o.code for o in outcomes] == [0, 0, 0], [o.err for o in outcomes]
    chain = chain_of([o.move for o in outcomes], start="1")
    assert sorted(chain[1:]) == sorted(CANDIDATES)
    assert _aliases(api, model) == {"production": chain[-1]}
    assert history_of(_tags(api, model).get("alias_history")) == chain[:-1]
    assert not [n for n in _names(api) if n.startswith(model) and is_lock_name(n)]

    for expected in reversed(chain[:-1]):
        (outcome,) = at_once(api.url, [["rollback", f"--model={model}"]])
        assert outcome.code == 0, outcome.err
        assert _aliases(api, model) == {"production": expected}


def test_concurrent_rollbacks_each_take_one_step(api: MlflowServer, model: str) -> None:
    for version in CANDIDATES:
        (outcome,) = at_once(api.url, [["promote", f"--model={model}", f"--version={version}"]])
        assert outcome.code == 0, outcome.err
    outcomes = at_once(api.url, [["rollback", f"--model={model}"]] * 2)
    assert [o.code for o in outcomes] == [0, 0], [o.err for o in outcomes]
    assert _aliases(api, model) == {"production": "2"}
    assert history_of(_tags(api, model).get("alias_history")) == ["1"]


HOLD = """
import os, signal, sys, time
from training.registry import open_registry
with open_registry().update(sys.argv[1], "a test holding the lock") as update:
    print("holding", flush=True)
    if sys.argv[2] == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(float(sys.argv[2]))
"""


def _hold(url: str, model: str, how: str) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLD), model, how],
        cwd=REPO_ROOT,
        env=lifecycle_env(url),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline() == "holding\n"
    return holder


def test_a_crashed_holder_on_this_machine_is_taken_over_at_once(
    api: MlflowServer, model: str
) -> None:
    holder = _hold(api.url, model, "crash")
    assert holder.wait(60) == -signal.SIGKILL
    lock = model + LOCK_SUFFIX
    stale = _tags(api, lock)
    assert float(stale["expires"]) > time.time()  # its lease has not run out

    (outcome,) = at_once(api.url, [["promote", f"--model={model}", "--version=2"]])
    assert outcome.code == 0, outcome.err
    assert f"took over a stale lock on {model} (a test holding the lock, pid {holder.pid}" in (
        outcome.err
    )
    assert _aliases(api, model) == {"production": "2"}
    # Taken over before the lease ended: the tombstone keeps the stale holder's expiry.
    tombstone = _tags(api, f"{lock}~{stale['holder']}")
    assert float(tombstone["expires"]) > time.time()
    assert lock not in _names(api)


def test_a_live_holder_is_waited_for(api: MlflowServer, model: str) -> None:
    holder = _hold(api.url, model, "2")
    (outcome,) = at_once(api.url, [["promote", f"--model={model}", "--version=3"]])
    assert holder.wait(60) == 0
    assert outcome.code == 0, outcome.err
    assert f"waiting for the lock on {model}: a test holding the lock, pid {holder.pid}" in (
        outcome.err
    )
    assert "took over" not in outcome.err
    assert _aliases(api, model) == {"production": "3"}


def test_a_lock_left_on_another_machine_is_taken_over_when_its_lease_ends(
    api: MlflowServer, model: str
) -> None:
    tags = {
        "holder": "elsewhere-1",
        "machine": "another-machine",
        "host": "build-7",
        "pid": "4242",
        "expires": f"{time.time() + 3:.3f}",
        "purpose": "promote version 9 of it",
    }
    body = {
        "name": model + LOCK_SUFFIX,
        "tags": [{"key": key, "value": value} for key, value in tags.items()],
    }
    httpx.post(f"{api.url}/api/2.0/mlflow/registered-models/create", json=body).raise_for_status()
    started = time.monotonic()
    (outcome,) = at_once(api.url, [["promote", f"--model={model}", "--version=4"]])
    assert outcome.code == 0, outcome.err
    assert time.monotonic() - started > 2.5  # the lease was respected
    err = outcome.err.splitlines()
    assert err[0].startswith(f"waiting for the lock on {model}: promote version 9 of it, pid 4242")
    assert err[1].startswith(f"took over a stale lock on {model} (promote version 9 of it")
    assert _aliases(api, model) == {"production": "4"}
    assert json.loads(_tags(api, model)["alias_history"]) == {"production": ["1"]}
