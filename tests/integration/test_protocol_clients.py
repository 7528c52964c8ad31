"""Every protocol through the client its users have, against a real server process, keys on.

A real `mlflow server` holds iris trained by `python -m training`. The server under test serves
that registered version with API keys and gRPC on; `mlflow models serve` serves the same
version's scikit-learn form (its registered ONNX form cannot answer a DataFrame request in
MLflow's scoring server: mlflow/mlflow#12539), and every MLflow answer is compared with it:
the same predictions for the same rows, and a 400 in MLflow's error shape where it answers 400.
Triton's `tritonclient.http` and `tritonclient.grpc` run in their default modes (binary tensors
over HTTP, raw tensors over gRPC); KServe V1 in the forms its documentation gives.
"""

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mlflow
import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from mlflow.pyfunc.scoring_server.client import ScoringServerClient
from mlflow.tracking import MlflowClient
from tritonclient.utils import InferenceServerException

from tests.processes import REPO_ROOT, ServerProcess, free_port, model_server, wait_for
from tests.registry import reset_mlflow_globals

pytestmark = pytest.mark.integration

NAME = "protocols-iris"
KEY = "protocol-key"
BEARER = {"Authorization": f"Bearer {KEY}"}
FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]


def run_training(url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_TRACKING_URI"] = url
    result = subprocess.run(
        [sys.executable, "-m", "training", f"--model-name={NAME}"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def registry(
    mlflow_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """The registered version: its tracking URI, scikit-learn form and ONNX session."""
    run_training(mlflow_server)
    with pytest.MonkeyPatch.context() as env:  # models:/ URIs resolve through the registry URI
        env.setenv("MLFLOW_TRACKING_URI", mlflow_server)
        env.setenv("MLFLOW_REGISTRY_URI", mlflow_server)
        client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
        sklearn_uri = client.get_model_version(NAME, "1").tags["sklearn_model_uri"]
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{NAME}/1", dst_path=str(tmp_path_factory.mktemp("onnx"))
            )
        )
    session = ort.InferenceSession(str(local / "model.onnx"), providers=["CPUExecutionProvider"])
    yield {"url": mlflow_server, "sklearn_uri": sklearn_uri, "session": session}
    reset_mlflow_globals()


def server_env(registry: dict[str, Any], grpc_port: int) -> dict[str, str]:
    """Our server on the registered model, with keys and gRPC on."""
    return {
        "MODEL_URI": f"models:/{NAME}/1",
        "MLFLOW_TRACKING_URI": registry["url"],
        "API_KEYS": KEY,
        "GRPC_PORT": str(grpc_port),
        "MAX_BATCH": "1000",
    }


@pytest.fixture(scope="module")
def ours(
    registry: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, int]]:
    grpc_port = free_port()
    env = server_env(registry, grpc_port)
    with model_server(env, tmp_path_factory.mktemp("ours")) as server:
        yield server, grpc_port


@pytest.fixture(scope="module", params=["grpcio", "builtin"])
def grpc_ours(
    request: pytest.FixtureRequest, registry: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerProcess, int]]:  # fmt: skip
    """The server with keys and gRPC on, over each GRPC_TRANSPORT."""
    grpc_port = free_port()
    env = {**server_env(registry, grpc_port), "GRPC_TRANSPORT": request.param}
    with model_server(env, tmp_path_factory.mktemp(f"grpc-{request.param}")) as server:
        yield server, grpc_port


@pytest.fixture(scope="module")
def keyless(
    registry: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """The same model without keys, for MLflow's own client (it cannot send a header)."""
    env = {"MODEL_URI": f"models:/{NAME}/1", "MLFLOW_TRACKING_URI": registry["url"]}
    with model_server(env, tmp_path_factory.mktemp("keyless")) as server:
        yield server


@pytest.fixture(scope="module")
def mlflow_serve(
    registry: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`mlflow models serve` on the same version's scikit-learn form."""
    port = free_port()
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
        "MLFLOW_TRACKING_URI": registry["url"],
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    log = tmp_path_factory.mktemp("mlflow-serve") / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [os.path.join(bin_dir, "mlflow"), "models", "serve", "-m", registry["sklearn_uri"],
             "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port),
             "--workers", "1"],
            cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_for(url + "/ping", timeout=300)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{log.read_text()[-3000:]}") from None
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def rows(n: int, seed: int = 11) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.1, 8, (n, 4)).round(2).astype(np.float32)


def labels(registry: dict[str, Any], batch: np.ndarray) -> np.ndarray:
    result: np.ndarray = registry["session"].run(["label"], {"input": batch})[0]
    return result


# ---- Triton's clients, default modes ------------------------------------------------------


@pytest.mark.parametrize("n", [1, 1000])
def test_tritonclient_http_in_its_default_binary_mode(
    ours: tuple[ServerProcess, int], registry: dict[str, Any], n: int
) -> None:
    server, _ = ours
    client = triton_http.InferenceServerClient(server.url.removeprefix("http://"))
    assert client.is_server_live()
    assert client.is_server_ready()
    # Model metadata needs the key too, unless OPEN_ROUTES names it.
    assert client.is_model_ready(NAME, headers=dict(BEARER))
    assert client.get_model_metadata(NAME, headers=dict(BEARER))["inputs"][0]["shape"] == [-1, 4]
    batch = rows(n)
    tensor = triton_http.InferInput("input", [n, 4], "FP32")
    tensor.set_data_from_numpy(batch)  # binary_data=True: the extension
    result = client.infer(NAME, [tensor], headers=dict(BEARER))  # it adds to the dict
    assert np.array_equal(result.as_numpy("label"), labels(registry, batch))
    assert result.as_numpy("probabilities").shape == (n, 3)
    client.close()


def test_tritonclient_http_errors_are_4xx(ours: tuple[ServerProcess, int]) -> None:
    server, _ = ours
    client = triton_http.InferenceServerClient(server.url.removeprefix("http://"))

    def infer(name: str = NAME, datatype: str = "FP32", shape: tuple[int, int] = (1, 4),
              headers: dict[str, str] | None = None, output: str | None = None) -> str:  # fmt: skip
        tensor = triton_http.InferInput("input", list(shape), datatype)
        dtype = {"FP32": np.float32, "INT8": np.int8, "FP16": np.float16}[datatype]
        tensor.set_data_from_numpy(np.ones(shape, dtype))
        outputs = None if output is None else [triton_http.InferRequestedOutput(output)]
        with pytest.raises(InferenceServerException) as caught:
            client.infer(
                name,
                [tensor],
                outputs=outputs,
                headers=dict(BEARER if headers is None else headers),
            )
        return str(caught.value.status())

    assert infer(datatype="INT8") == "400"
    assert infer(datatype="FP16") == "400"
    assert infer(shape=(1, 3)) == "400"
    assert infer(output="nope") == "400"
    assert infer(name="nope") == "404"
    assert infer(headers={}) == "401"
    client.close()


@pytest.mark.parametrize("n", [1, 1000])
def test_tritonclient_grpc_in_its_default_mode(
    grpc_ours: tuple[ServerProcess, int], registry: dict[str, Any], n: int
) -> None:
    _, port = grpc_ours
    client = triton_grpc.InferenceServerClient(f"127.0.0.1:{port}")
    assert client.is_server_live()
    assert client.is_server_ready()
    auth = {"authorization": f"Bearer {KEY}"}
    assert client.is_model_ready(NAME, headers=auth)
    metadata = client.get_model_metadata(NAME, headers=auth)
    assert metadata.name == NAME
    assert list(metadata.inputs[0].shape) == [-1, 4]
    batch = rows(n)
    tensor = triton_grpc.InferInput("input", [n, 4], "FP32")
    tensor.set_data_from_numpy(batch)
    result = client.infer(NAME, [tensor], headers={"authorization": f"Bearer {KEY}"})
    assert np.array_equal(result.as_numpy("label"), labels(registry, batch))
    assert result.as_numpy("probabilities").shape == (n, 3)
    client.close()


def test_tritonclient_grpc_errors(grpc_ours: tuple[ServerProcess, int]) -> None:
    _, port = grpc_ours
    client = triton_grpc.InferenceServerClient(f"127.0.0.1:{port}")
    auth = {"authorization": f"Bearer {KEY}"}

    def infer(name: str = NAME, datatype: str = "FP32", shape: tuple[int, int] = (1, 4),
              headers: dict[str, str] = auth) -> str:  # fmt: skip
        tensor = triton_grpc.InferInput("input", list(shape), datatype)
        dtype = {"FP32": np.float32, "INT8": np.int8}[datatype]
        tensor.set_data_from_numpy(np.ones(shape, dtype))
        with pytest.raises(InferenceServerException) as caught:
            client.infer(name, [tensor], headers=headers)
        return str(caught.value.status())

    assert infer(datatype="INT8") == "StatusCode.INVALID_ARGUMENT"
    assert infer(shape=(1, 3)) == "StatusCode.INVALID_ARGUMENT"
    assert infer(name="nope") == "StatusCode.NOT_FOUND"
    assert infer(headers={}) == "StatusCode.UNAUTHENTICATED"
    client.close()


# ---- MLflow's scoring protocol, compared with `mlflow models serve` ----------------------


def frame(batch: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(batch.astype(np.float64), columns=FEATURES)


@pytest.mark.parametrize("n", [1, 1000])
def test_mlflows_own_client_gets_what_mlflow_models_serve_answers(
    keyless: ServerProcess, mlflow_serve: str, n: int
) -> None:
    host, port = keyless.url.removeprefix("http://").split(":")
    # MLflow's client is untyped.
    ours = ScoringServerClient(host, int(port))  # type: ignore[no-untyped-call]
    theirs_port = int(mlflow_serve.rsplit(":", 1)[1])
    theirs = ScoringServerClient("127.0.0.1", theirs_port)  # type: ignore[no-untyped-call]
    ours.ping()  # type: ignore[no-untyped-call]
    assert ours.get_version()  # type: ignore[no-untyped-call]
    batch = frame(rows(n, seed=n))
    assert ours.invoke(batch)["predictions"] == theirs.invoke(batch)["predictions"]


FORMS = {
    "dataframe_split": lambda b: {"dataframe_split": b.to_dict(orient="split")},
    "dataframe_records": lambda b: {"dataframe_records": b.to_dict(orient="records")},
    "instances": lambda b: {"instances": b.to_dict(orient="records")},
    "inputs": lambda b: {"inputs": b.to_dict(orient="list")},
}


@pytest.mark.parametrize("form", FORMS)
def test_every_json_form_and_csv_agree_with_mlflow(
    ours: tuple[ServerProcess, int], mlflow_serve: str, form: str
) -> None:
    server, _ = ours
    batch = frame(rows(50, seed=3))
    body = FORMS[form](batch)
    mine = httpx.post(server.url + "/invocations", json=body, headers=BEARER)
    theirs = httpx.post(mlflow_serve + "/invocations", json=body)
    assert mine.status_code == theirs.status_code == 200, (mine.text, theirs.text[:300])
    assert mine.json() == theirs.json()
    csv = batch.to_csv(index=False)
    mine = httpx.post(server.url + "/invocations", content=csv,
                      headers={**BEARER, "Content-Type": "text/csv"})  # fmt: skip
    theirs = httpx.post(mlflow_serve + "/invocations", content=csv,
                        headers={"Content-Type": "text/csv"})  # fmt: skip
    assert mine.json() == theirs.json()


BAD_BODIES: dict[str, Any] = {
    "not JSON": b"{not json",
    "a list": b"[1, 2]",
    "no input field": {"columns": FEATURES},
    "two input fields": {"instances": [[1, 2, 3, 4]], "inputs": [[1, 2, 3, 4]]},
    "a missing column": {"dataframe_split": {"columns": FEATURES[1:], "data": [[1, 2, 3]]}},
    "a short row": {"dataframe_split": {"columns": FEATURES, "data": [[1, 2, 3]]}},
    "a missing field": {"dataframe_records": [dict(zip(FEATURES[1:], [1, 2, 3], strict=True))]},
    "a string value": {"dataframe_records": [dict(zip(FEATURES, ["x", 2, 3, 4], strict=True))]},
    "no rows": {"dataframe_records": []},
}


@pytest.mark.parametrize("what", BAD_BODIES)
def test_bad_input_is_400_in_mlflows_shape_where_mlflow_says_400(
    ours: tuple[ServerProcess, int], mlflow_serve: str, what: str
) -> None:
    server, _ = ours
    body = BAD_BODIES[what]
    kwargs: dict[str, Any] = {"content": body} if isinstance(body, bytes) else {"json": body}
    headers = {"Content-Type": "application/json"}
    theirs = httpx.post(mlflow_serve + "/invocations", headers=headers, **kwargs)
    mine = httpx.post(server.url + "/invocations", headers={**headers, **BEARER}, **kwargs)
    assert theirs.status_code == 400, theirs.text[:300]
    assert mine.status_code == 400, mine.text
    assert {"error_code", "message"} <= set(theirs.json())
    assert list(mine.json()) == ["error_code", "message"]
    assert mine.json()["error_code"] in ("BAD_REQUEST", "INVALID_PARAMETER_VALUE")


def test_mlflow_keys_ping_and_version(ours: tuple[ServerProcess, int], mlflow_serve: str) -> None:
    server, _ = ours
    body = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
    refused = httpx.post(server.url + "/invocations", json=body)
    assert refused.status_code == 401
    assert refused.json()["error_code"] == "UNAUTHENTICATED"
    assert httpx.get(server.url + "/ping").text == httpx.get(mlflow_serve + "/ping").text == "\n"
    assert httpx.get(server.url + "/version", headers=BEARER).status_code == 200


# ---- KServe V1, in its documented forms ---------------------------------------------------


@pytest.mark.parametrize("n", [1, 1000])
def test_kserve_v1_predict_and_readiness(
    ours: tuple[ServerProcess, int], registry: dict[str, Any], n: int
) -> None:
    server, _ = ours
    batch = rows(n, seed=n + 1)
    response = httpx.post(
        f"{server.url}/v1/models/{NAME}:predict",
        json={"instances": batch.tolist()},
        headers=BEARER,
    )
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == labels(registry, batch).tolist()
    ready = httpx.get(f"{server.url}/v1/models/{NAME}", headers=BEARER)
    assert ready.json() == {"name": NAME, "ready": True}


def test_kserve_v1_errors_are_4xx(ours: tuple[ServerProcess, int]) -> None:
    server, _ = ours
    predict = f"{server.url}/v1/models/{NAME}:predict"
    bodies: list[dict[str, Any]] = [
        {"instances": [[1, 2, 3]]},
        {"instances": []},
        {"rows": [[1, 2, 3, 4]]},
        {"instances": [[1, "x", 3, 4]]},
    ]
    for body in bodies:
        response = httpx.post(predict, json=body, headers=BEARER)
        assert response.status_code == 400, (body, response.text)
        assert list(response.json()) == ["error"]
    assert httpx.post(predict, json={"instances": [[1, 2, 3, 4]]}).status_code == 401
    unknown = httpx.post(f"{server.url}/v1/models/nope:predict",
                         json={"instances": [[1, 2, 3, 4]]}, headers=BEARER)  # fmt: skip
    assert unknown.status_code == 404
