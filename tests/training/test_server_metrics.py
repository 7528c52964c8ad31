"""The judge's serving figures: summed over replicas, p95 as Prometheus computes it, resets."""

import pytest

from training.errors import TrainingError
from training.server_metrics import Histogram, ServingFigures, add_exposition, addresses

REPLICA = """\
http_requests_total{method="POST",route="/predict",status="200"} 90
http_requests_total{method="POST",route="/predict",status="500"} 10
http_requests_total{method="GET",route="/metrics",status="500"} 99
http_request_duration_seconds_bucket{method="POST",route="/predict",status="200",le="0.01"} 80
http_request_duration_seconds_bucket{method="POST",route="/predict",status="200",le="0.1"} 90
http_request_duration_seconds_bucket{method="POST",route="/predict",status="200",le="+Inf"} 90
model_inference_seconds_bucket{variant="challenger",le="0.001"} 5
model_inference_seconds_bucket{variant="challenger",le="+Inf"} 5
model_shadow_failures_total 1
"""


def test_figures_are_summed_over_replicas_and_prediction_routes_only() -> None:
    figures = ServingFigures()
    add_exposition(figures, REPLICA)
    add_exposition(figures, REPLICA)
    assert (figures.requests, figures.errors) == (200, 20)  # /metrics' 500s are not predictions
    assert figures.error_rate == pytest.approx(0.1)
    assert figures.challenger_error_rate() == pytest.approx(2 / 12)
    assert figures.latency.count == 180


def test_quantile_interpolates_inside_the_bucket_like_prometheus() -> None:
    histogram = Histogram({0.01: 80.0, 0.1: 90.0, float("inf"): 90.0})
    # rank 0.5 * 90 = 45 falls in the first bucket: 0 + 0.01 * 45 / 80
    assert histogram.quantile(0.5) == pytest.approx(0.005625)
    # rank 0.95 * 90 = 85.5: 0.01 + 0.09 * (85.5 - 80) / 10
    assert histogram.quantile(0.95) == pytest.approx(0.0595)
    assert Histogram().quantile(0.95) is None


def test_since_a_snapshot_and_after_a_restart() -> None:
    before, now = ServingFigures(), ServingFigures()
    add_exposition(before, REPLICA)
    add_exposition(now, REPLICA)
    add_exposition(now, REPLICA)
    since = now.minus(before)
    assert (since.requests, since.errors) == (100, 10)
    restarted = ServingFigures()
    add_exposition(restarted, REPLICA.replace(" 90\n", " 9\n"))
    assert restarted.minus(now).requests == restarted.requests  # counters began again
    assert ServingFigures.from_json(now.to_json()) == now


def test_a_name_is_scraped_at_every_address() -> None:
    assert addresses("http://127.0.0.1:8000/metrics") == ["http://127.0.0.1:8000/metrics"]
    with pytest.raises(TrainingError, match="http"):
        addresses("ftp://host/metrics")
