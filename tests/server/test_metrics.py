from server.metrics import EXPORTED_METRICS, UNMATCHED_ROUTE, Metrics


def exported_names(metrics: Metrics) -> set[str]:
    names = set()
    for family in metrics.registry.collect():
        names.add(family.name)
        if family.type == "counter":
            names.add(f"{family.name}_total")
    return names


def test_every_promised_metric_is_registered() -> None:
    names = exported_names(Metrics())
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
