"""Prometheus metrics. The names are a compatibility promise to existing dashboards and alerts.

Label values are bounded: routes are templates (unknown paths share one value), statuses are
numbers, classes come from the model. Children are bound once and cached, so the request path
does one dict lookup per metric instead of a `.labels()` call.
"""

from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

UNMATCHED_ROUTE = "unmatched"

# Latency from 100 µs (a cached one-row request) up to 10 s (something is badly wrong).
REQUEST_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                   0.5, 1.0, 2.5, 5.0, 10.0)  # fmt: skip
# onnxruntime takes single-digit microseconds for one row: resolve tens of µs up to a second.
INFERENCE_BUCKETS = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                     0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)  # fmt: skip


class Metrics:
    """Every metric the server exports, in a registry of its own (tests build many apps)."""

    def __init__(self) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created series double the exposition and nobody queries them
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        r = self.registry
        self.request_duration = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency by method, route template and status.",
            ("method", "route", "status"),
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests by method, route template and status.",
            ("method", "route", "status"),
            registry=r,
        )
        self.inference = Histogram(
            "model_inference_seconds",
            "Time inside the model per onnxruntime call (requests arriving together share one).",
            ("variant",),
            buckets=INFERENCE_BUCKETS,
            registry=r,
        )
        self.predictions = Counter(
            "predictions_total",
            'Predicted rows by class ("value" for regressors), model version and variant.',
            ("predicted_class", "model_version", "variant"),
            registry=r,
        )
        self.model_info = Gauge(
            "model_info",
            "The model being served (1 for the current one of each variant).",
            ("name", "version", "source", "variant"),
            registry=r,
        )
        self.model_ready = Gauge("model_ready", "1 when a model is loaded and serving.", registry=r)
        self.model_loaded = Gauge(
            "model_loaded_timestamp_seconds",
            "Unix time at which the current model of each variant was swapped in.",
            ("variant",),
            registry=r,
        )
        self.reload_failures = Counter(
            "model_reload_failures_total",
            "Model versions that failed to load or warm up and were not swapped in.",
            ("variant",),
            registry=r,
        )
        self.shadow_agreement = Counter(
            "model_shadow_agreement_total",
            "Shadow-mode comparisons of champion and challenger, by outcome.",
            ("outcome",),
            registry=r,
        )
        self.feature_drift = Gauge(
            "model_feature_drift_psi",
            "Population Stability Index of each feature over the drift window.",
            ("feature",),
            registry=r,
        )
        self.prediction_drift = Gauge(
            "model_prediction_drift_psi",
            "Population Stability Index of the predictions over the drift window.",
            registry=r,
        )
        self.shed = Counter(
            "requests_shed_total",
            "Requests refused with 503 because MAX_CONCURRENCY requests were in flight.",
            registry=r,
        )
        self._http: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._http.get(key)
        if children is None:
            labels = (method, route, str(status))
            children = (self.request_duration.labels(*labels), self.requests.labels(*labels))
            self._http[key] = children
        children[0].observe(seconds)
        children[1].inc()

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


# Every metric name the server exports (as Prometheus shows them, counters with _total);
# the chart's rules and dashboards are checked against this list.
EXPORTED_METRICS = (
    "http_request_duration_seconds",
    "http_requests_total",
    "model_inference_seconds",
    "predictions_total",
    "model_info",
    "model_ready",
    "model_loaded_timestamp_seconds",
    "model_reload_failures_total",
    "model_shadow_agreement_total",
    "model_feature_drift_psi",
    "model_prediction_drift_psi",
    "requests_shed_total",
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
)
