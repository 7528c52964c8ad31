"""The metric names the server exports: the contract's compatibility promise (notes/CONTRACT.md).

Rules and dashboards may use only these (tests/chart/test_monitoring.py checks). Until the server
module exists this list is authoritative; once it does, the test can read the server's registry.
"""

SERVER_METRICS: frozenset[str] = frozenset(
    {
        "http_request_duration_seconds",  # histogram; method, route, status
        "http_requests_total",  # counter; method, route, status
        "model_inference_seconds",  # histogram; variant
        "predictions_total",  # counter; predicted_class, model_version, variant
        "model_info",  # gauge = 1; name, version, source, variant
        "model_ready",  # gauge 0/1
        "model_loaded_timestamp_seconds",  # gauge; variant
        "model_reload_failures_total",  # counter; variant
        "model_shadow_agreement_total",  # counter; outcome = agree | disagree
        "model_feature_drift_psi",  # gauge; feature
        "model_prediction_drift_psi",  # gauge
        "requests_shed_total",  # counter
        # prometheus-client's default process collector
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
    }
)

# Series Prometheus itself attaches to every scrape target.
PROMETHEUS_SYNTHETIC: frozenset[str] = frozenset({"up"})
