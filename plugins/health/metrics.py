"""coredns_health_* (plugin/health/overloaded.go): the self-probe's latency and failures."""

from __future__ import annotations

import prometheus_client

from kdns.metrics import SLIM_TIME_BUCKETS

prometheus_client.disable_created_metrics()

REQUEST_DURATION = prometheus_client.Histogram(
    "coredns_health_request_duration_seconds",
    "Histogram of the time (in seconds) each request took.",
    buckets=SLIM_TIME_BUCKETS,
)
REQUEST_FAILURES = prometheus_client.Counter(
    "coredns_health_request_failures_total",
    "The number of times the health check failed.",
)
