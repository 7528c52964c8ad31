"""The serving figures the judge weighs besides quality, read from the servers' /metrics.

Each URL's host is resolved and every address scraped (a Kubernetes headless Service resolves to
every ready pod), and the counters and histograms are summed over the replicas. Only the standard
library and prometheus-client's text parser: no Prometheus server is needed.
"""

import socket
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from training.errors import TrainingError, one_line

_TIMEOUT_SECONDS = 5.0


def is_prediction_route(route: str) -> bool:
    return route == "/predict" or (route.startswith("/v2/models/") and route.endswith("/infer"))


@dataclass
class Histogram:
    """Cumulative bucket counts by upper bound (summed over replicas)."""

    buckets: dict[float, float] = field(default_factory=dict)

    def add(self, le: float, count: float) -> None:
        self.buckets[le] = self.buckets.get(le, 0.0) + count

    @property
    def count(self) -> float:
        return self.buckets.get(float("inf"), 0.0)

    def minus(self, before: "Histogram") -> "Histogram":
        if self.count < before.count:  # a replica restarted: its counters began again
            return self
        return Histogram({le: c - before.buckets.get(le, 0.0) for le, c in self.buckets.items()})

    def quantile(self, q: float) -> float | None:
        """Prometheus' histogram_quantile: linear interpolation inside the bucket."""
        total = self.count
        if total <= 0:
            return None
        rank = q * total
        lower_bound, lower_count = 0.0, 0.0
        for le in sorted(self.buckets):
            count = self.buckets[le]
            if count >= rank:
                if le == float("inf"):
                    return lower_bound
                if count == lower_count:
                    return le
                return lower_bound + (le - lower_bound) * (rank - lower_count) / (
                    count - lower_count
                )
            lower_bound, lower_count = le, count
        return lower_bound


@dataclass
class ServingFigures:
    """Prediction requests and their latency, and each variant's model calls and failures."""

    requests: float = 0.0
    errors: float = 0.0  # answered 5xx
    latency: Histogram = field(default_factory=Histogram)
    inference: dict[str, Histogram] = field(default_factory=dict)
    shadow_failures: float = 0.0
    replicas: int = 0

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    def challenger_error_rate(self) -> float | None:
        """Shadow failures per shadow call: the challenger's errors when it answers no one."""
        calls = self.inference.get("challenger", Histogram()).count + self.shadow_failures
        return self.shadow_failures / calls if calls else None

    def minus(self, before: "ServingFigures") -> "ServingFigures":
        """What happened since `before` (a replica whose counters restarted counts from zero)."""
        reset = self.requests < before.requests
        return ServingFigures(
            requests=self.requests if reset else self.requests - before.requests,
            errors=self.errors if reset else self.errors - before.errors,
            latency=self.latency.minus(before.latency),
            inference={
                v: h.minus(before.inference.get(v, Histogram())) for v, h in self.inference.items()
            },
            shadow_failures=max(self.shadow_failures - before.shadow_failures, 0.0),
            replicas=self.replicas,
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["latency"] = _buckets_json(self.latency)
        data["inference"] = {v: _buckets_json(h) for v, h in self.inference.items()}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ServingFigures":
        return cls(
            requests=float(data["requests"]),
            errors=float(data["errors"]),
            latency=_buckets_from(data["latency"]),
            inference={v: _buckets_from(b) for v, b in data["inference"].items()},
            shadow_failures=float(data["shadow_failures"]),
            replicas=int(data["replicas"]),
        )


def _buckets_json(histogram: Histogram) -> list[list[Any]]:
    return [
        [("+Inf" if le == float("inf") else le), c] for le, c in sorted(histogram.buckets.items())
    ]


def _buckets_from(data: list[list[Any]]) -> Histogram:
    return Histogram({float(le): float(c) for le, c in data})


def addresses(url: str) -> list[str]:
    """The URL once per address its host resolves to (every pod behind a headless Service)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TrainingError(f"--metrics-url must be http(s)://host:port/metrics, got {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        found = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise TrainingError(f"cannot resolve {parts.hostname}: {exc}") from exc
    urls = []
    for address in dict.fromkeys(str(info[4][0]) for info in found):
        host = f"[{address}]" if ":" in address else address
        urls.append(urllib.parse.urlunsplit(parts._replace(netloc=f"{host}:{port}")))
    return urls


def scrape(urls: list[str]) -> ServingFigures:
    """Sum the serving figures of every replica behind `urls`."""
    figures = ServingFigures()
    for url in dict.fromkeys(a for u in urls for a in addresses(u)):
        try:
            with urllib.request.urlopen(url, timeout=_TIMEOUT_SECONDS) as response:  # noqa: S310 - http(s) checked above
                text = response.read().decode()
        except OSError as exc:
            raise TrainingError(f"cannot read server metrics at {url}: {one_line(exc)}") from exc
        add_exposition(figures, text)
        figures.replicas += 1
    return figures


def add_exposition(figures: ServingFigures, text: str) -> None:
    """Add one replica's /metrics text to the sums."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "http_requests_total" and is_prediction_route(labels["route"]):
                figures.requests += sample.value
                if labels["status"].startswith("5"):
                    figures.errors += sample.value
            elif sample.name == "http_request_duration_seconds_bucket" and is_prediction_route(
                labels["route"]
            ):
                figures.latency.add(float(labels["le"]), sample.value)
            elif sample.name == "model_inference_seconds_bucket":
                histogram = figures.inference.setdefault(labels["variant"], Histogram())
                histogram.add(float(labels["le"]), sample.value)
            elif sample.name == "model_shadow_failures_total":
                figures.shadow_failures += sample.value
