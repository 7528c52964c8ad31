"""The diabetes model takes scikit-learn's scaled features, and what raw values get instead.

docs/models.md tells users both facts; these tests keep them true.
"""

import time
from collections.abc import Iterator

import numpy as np
import pytest
from sklearn import datasets
from starlette.testclient import TestClient

from server.app import create_app
from server.settings import Settings
from tests.conftest import TrainedStore
from training.datasets import load_dataset

# Two patients in the units a clinic records: age, sex (1 or 2), BMI, blood pressure, six serum values.
RAW_PATIENTS = [
    [59, 2, 32.1, 101, 157, 93.2, 38, 4, 4.8598, 87],
    [48, 1, 21.6, 87, 183, 103.2, 70, 3, 3.8918, 69],
]


def scale(raw: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The documented recipe: centre each column on the data set's mean, then divide by the
    square root of its sum of squares (the standard deviation times sqrt(442))."""
    centred = reference - reference.mean(axis=0)
    scaled: np.ndarray = (raw - reference.mean(axis=0)) / np.sqrt((centred**2).sum(axis=0))
    return scaled


def test_the_scaled_features_are_the_raw_ones_centred_and_scaled() -> None:
    raw = datasets.load_diabetes(scaled=False).data
    assert np.allclose(scale(raw, raw), load_dataset("diabetes").X, atol=1e-7)


@pytest.fixture
def diabetes(trained_store: TrainedStore) -> Iterator[TestClient]:
    exported = trained_store.exported["diabetes-regressor"]
    with TestClient(create_app(Settings(model_uri=str(exported)))) as client:
        deadline = time.monotonic() + 60  # the model loads in the background
        while client.get("/ready").status_code != 200:
            assert time.monotonic() < deadline, client.get("/ready").text
            time.sleep(0.05)
        yield client


def predict(client: TestClient, rows: list[list[float]]) -> list[float]:
    features = load_dataset("diabetes").features
    instances = [dict(zip(features, map(float, row), strict=True)) for row in rows]
    answer = client.post("/predict", json={"instances": instances})
    assert answer.status_code == 200, answer.text
    return [p["prediction"] for p in answer.json()["predictions"]]


def test_raw_values_all_get_the_answer_for_the_top_of_every_range(diabetes: TestClient) -> None:
    """Every raw value lies above every split the trees learned on scaled data, so any raw
    request gets one and the same number: the prediction for a patient at the maximum of
    every feature. It is answered (200), not refused."""
    top = load_dataset("diabetes").X.max(axis=0).tolist()
    first, second, at_the_top = predict(diabetes, [*RAW_PATIENTS, top])
    assert first == second == at_the_top


def test_scaled_values_get_individual_answers(diabetes: TestClient) -> None:
    raw = datasets.load_diabetes(scaled=False).data
    scaled = scale(np.asarray(RAW_PATIENTS, dtype=np.float64), raw).tolist()
    first, second = predict(diabetes, scaled)
    assert first != second
