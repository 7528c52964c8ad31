"""Prometheus metrics. The names are a compatibility promise to existing dashboards and alerts.

Label values are bounded: routes are templates (unknown paths share one value), statuses are
numbers, classes come from the model. Children are bound once and cached, so the request path
does one dict lookup per metric instead of a `.labels()` call; the two per-request HTTP metrics
are kept without prometheus-client's locks (see `RequestStats`).
"""

import math
from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.utils import floatToGoString

UNMATCHED_ROUTE = "unmatched"

# Latency from 100 µs (a cached one-row request) up to 10 s (something is badly wrong).
REQUEST_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                   0.5, 1.0, 2.5, 5.0, 10.0)  # fmt: skip
# onnxruntime takes single-digit microseconds for one row: resolve tens of µs up to a second.
INFERENCE_BUCKETS = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                     0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)  # fmt: skip


class RequestStats:
    """`http_request_duration_seconds` and `http_requests_total`, with no lock per observation.

    Both are observed once per request on the event loop. prometheus-client's Histogram and
    Counter take a lock for every value they update, 2.2 µs a request on the benchmark machine,
    a tenth of the app's own cost; here an observation is a dict lookup, a bisect and two
    additions, and the two families are built when /metrics is scraped. Only the event loop
    touches it (observations and scrapes alike), so nothing needs a lock.
    """

    LABELS = ("method", "route", "status")

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self._bounds = buckets
        # The `le` values exactly as prometheus-client writes them ("0.0001", "1.0", "+Inf").
        self._le: list[str] = [
            floatToGoString(b)  # type: ignore[no-untyped-call]  # untyped in prometheus-client
            for b in (*buckets, math.inf)
        ]
        # (method, route, status) -> [count in each bucket (not cumulative) ..., +Inf, sum]
        self._series: dict[tuple[str, str, int], list[float]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = [0.0] * (len(self._bounds) + 2)
        series[bisect_left(self._bounds, seconds)] += 1  # the first bucket with seconds <= le
        series[-1] += seconds

    def collect(self) -> Iterator[Metric]:
        duration = HistogramMetricFamily(
            "http_request_duration_seconds",
            "HTTP request latency by method, route template and status.",
            labels=self.LABELS,
        )
        total = CounterMetricFamily(
            "http_requests",
            "HTTP requests by method, route template and status.",
            labels=self.LABELS,
        )
        for (method, route, status), series in list(self._series.items()):
            labels = [method, route, str(status)]
            cumulative = 0.0
            buckets = []
            for le, count in zip(self._le, series, strict=False):
                cumulative += count
                buckets.append((le, cumulative))
            duration.add_metric(labels, buckets, series[-1])
            total.add_metric(labels, cumulative)
        yield duration
        yield total

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily("http_request_duration_seconds", "", labels=self.LABELS)
        yield CounterMetricFamily("http_requests", "", labels=self.LABELS)


class Metrics:
    """Every metric the server exports, in a registry of its own (tests build many apps)."""

    def __init__(self) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created series double the exposition and nobody queries them
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        r = self.registry
        self.requests = RequestStats(REQUEST_BUCKETS)
        r.register(self.requests)
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
        self.shadow_failures = Counter(
            "model_shadow_failures_total",
            "Shadow scoring calls of the challenger that raised (the response was not affected).",
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
        self.observe_request = self.requests.observe

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
    "model_shadow_failures_total",
    "model_live_quality",
    "model_live_quality_lower",
    "model_live_quality_upper",
    "model_live_labels",
    "model_heldout_quality",
    "model_quality_margin",
    "model_quality_min_labels",
    "feedback_rows_total",
    "predictions_recorded_total",
    "predictions_record_dropped_total",
    "prediction_store_errors_total",
    "prediction_record_buffer_rows",
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
)
