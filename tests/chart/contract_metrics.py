"""The metric names the server exports, taken from the server itself.

Rules and dashboards may use only these (tests/chart/test_monitoring.py checks), and
tests/server/test_metrics.py checks that the server really exports every one, so a rename on
either side breaks a test.
"""

from server.metrics import EXPORTED_METRICS

SERVER_METRICS: frozenset[str] = frozenset(EXPORTED_METRICS)

# Series Prometheus itself attaches to every scrape target.
PROMETHEUS_SYNTHETIC: frozenset[str] = frozenset({"up"})
