import random
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from server.app import create_app
from server.metrics import EXPORTED_METRICS, REQUEST_BUCKETS, UNMATCHED_ROUTE, Metrics
from server.settings import Settings


def exported_names(metrics: Metrics) -> set[str]:
    names = set()
    for family in metrics.registry.collect():
        names.add(family.name)
        if family.type == "counter":
            names.add(f"{family.name}_total")
    return names


def test_every_promised_metric_is_registered(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'predictions.db'}"
    app = create_app(Settings(record_predictions=True, prediction_store_uri=store))
    names = exported_names(app.state.metrics)
    missing = [name for name in EXPORTED_METRICS if name not in names]
    assert not missing


def test_request_children_are_cached_and_counted() -> None:
    metrics = Metrics()
    for _ in range(3):
        metrics.observe_request("POST", "/predict", 200, 0.0002)
    metrics.observe_request("GET", UNMATCHED_ROUTE, 404, 0.0001)
    text = metrics.exposition()[0].decode()
    assert 'http_requests_total{method="POST",route="/predict",status="200"} 3.0' in text
    assert 'http_requests_total{method="GET",route="unmatched",status="404"} 1.0' in text
    assert (
        'http_request_duration_seconds_bucket{le="0.00025",method="POST",route="/predict",status="200"} 3.0'
        in text
    )
    assert "_created" not in text


def test_inference_buckets_resolve_tens_of_microseconds() -> None:
    metrics = Metrics()
    metrics.inference.labels("champion").observe(0.00002)
    text = metrics.exposition()[0].decode()
    assert 'model_inference_seconds_bucket{le="1e-05",variant="champion"} 0.0' in text
    assert 'model_inference_seconds_bucket{le="2.5e-05",variant="champion"} 1.0' in text


def test_request_stats_expose_what_prometheus_clients_own_histogram_would() -> None:
    """The lock-free request metrics must be indistinguishable from prometheus-client's."""
    ours = Metrics()
    registry = CollectorRegistry()
    labels = ("method", "route", "status")
    duration = Histogram(
        "http_request_duration_seconds",
        "HTTP request latency by method, route template and status.",
        labels,
        buckets=REQUEST_BUCKETS,
        registry=registry,
    )
    total = Counter(
        "http_requests_total",
        "HTTP requests by method, route template and status.",
        labels,
        registry=registry,
    )
    generator = random.Random(7)  # noqa: S311  # a reproducible sequence, not a secret
    edges = [*REQUEST_BUCKETS, 0.0, 20.0]  # values on a bound belong to that bound's bucket
    for _ in range(2000):
        method, route, status = generator.choice(
            [("POST", "/predict", 200), ("POST", "/predict", 422), ("GET", UNMATCHED_ROUTE, 404)]
        )
        seconds = generator.choice([generator.expovariate(300), generator.choice(edges)])
        ours.observe_request(method, route, status, seconds)
        duration.labels(method, route, str(status)).observe(seconds)
        total.labels(method, route, str(status)).inc()

    def http_lines(text: str) -> list[str]:
        return sorted(
            line.rsplit(" ", 1)[0] + " " + str(round(float(line.rsplit(" ", 1)[1]), 9))
            for line in text.splitlines()
            if line.startswith("http_") and "_created" not in line
        ) + sorted(line for line in text.splitlines() if line.startswith("# ") and " http_" in line)

    expected = http_lines(generate_latest(registry).decode())
    assert http_lines(ours.exposition()[0].decode()) == expected
    assert len(expected) == 3 * (len(REQUEST_BUCKETS) + 1 + 3) + 4
