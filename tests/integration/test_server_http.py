"""The server on a real socket, with its model from the registry: the routes answer end to end.

Every route's behaviour, good and bad input alike, is tested in process in tests/server; this is
what needs uvicorn, a port and a registry: the real process serving the real store.
"""

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import TrainedStore
from tests.processes import ServerProcess, model_server
from tests.samples import SETOSA

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def iris(
    trained_store: TrainedStore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    env = {
        "MLFLOW_TRACKING_URI": trained_store.tracking_uri,
        "MODEL_URI": "models:/iris-classifier@production",
    }
    with model_server(env, tmp_path_factory.mktemp("logs")) as server:
        yield server


def test_serves_the_registered_model_on_a_socket(iris: ServerProcess) -> None:
    assert httpx.get(iris.url + "/ready").json() == {"status": "ready", "model_loaded": True}
    info = httpx.get(iris.url + "/model/info").json()
    assert (info["source"], info["version"]) == ("registry", "1")
    assert info["model_uri"] == "models:/iris-classifier@production"
    answer = httpx.post(iris.url + "/predict", json={"features": SETOSA})
    assert answer.json()["prediction"] == "setosa"
    assert answer.headers["x-model-version"] == "1"
    oip = httpx.post(
        iris.url + "/v2/models/iris-classifier/infer",
        json={"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                          "data": list(SETOSA.values())}]},
    )  # fmt: skip
    assert oip.json()["outputs"][0]["data"] == [0]
    metrics = httpx.get(iris.url + "/metrics").text
    assert (
        'model_info{name="iris-classifier",source="registry",variant="champion",version="1"} 1.0'
        in metrics
    )


def test_no_server_banner_and_json_errors_on_the_wire(iris: ServerProcess) -> None:
    response = httpx.get(iris.url + "/nowhere")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert "server" not in response.headers
