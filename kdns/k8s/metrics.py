"""Metrics of the Kubernetes API layer.

The REST client metrics keep CoreDNS's names (metrics.md 2.5) so dashboards carry over; the
reflector metrics have no CoreDNS equivalent and are named ``kdns_k8s_*``:

- ``coredns_kubernetes_rest_client_requests_total{code,method,host}``
- ``coredns_kubernetes_rest_client_request_duration_seconds{verb,host}`` (time to headers)
- ``coredns_kubernetes_rest_client_rate_limiter_duration_seconds{verb,host}``
- ``kdns_k8s_lists_total{resource}``: full (paginated) lists completed
- ``kdns_k8s_relists_total{resource,reason}``: lists after the first (gone, resync, error)
- ``kdns_k8s_watch_restarts_total{resource,reason}``: watches re-opened without a relist
  (ended, dropped, stalled, error)
- ``kdns_k8s_events_total{resource,type}``: watch events applied (ADDED, MODIFIED, DELETED,
  BOOKMARK)
- ``kdns_k8s_malformed_total{resource}``: objects or events skipped as malformed
- ``kdns_k8s_last_sync_age_seconds{resource}``: seconds since the API last confirmed this
  reflector's state (list, event or bookmark); grows while the API server is away
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterator
from typing import Protocol

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

REST_REQUESTS = Counter(
    "coredns_kubernetes_rest_client_requests_total",
    "Number of HTTP requests to the Kubernetes API, partitioned by status code, method and host.",
    ["code", "method", "host"],
)
REST_REQUEST_DURATION = Histogram(
    "coredns_kubernetes_rest_client_request_duration_seconds",
    "Request latency to the Kubernetes API in seconds (until response headers).",
    ["verb", "host"],
)
REST_RATE_LIMITER_DURATION = Histogram(
    "coredns_kubernetes_rest_client_rate_limiter_duration_seconds",
    "Client-side rate limiter latency in seconds.",
    ["verb", "host"],
)
LISTS = Counter("kdns_k8s_lists", "Full paginated lists completed.", ["resource"])
RELISTS = Counter(
    "kdns_k8s_relists", "Lists after the first one, by reason.", ["resource", "reason"]
)
WATCH_RESTARTS = Counter(
    "kdns_k8s_watch_restarts",
    "Watches re-opened from the last resourceVersion (no relist), by reason.",
    ["resource", "reason"],
)
EVENTS = Counter("kdns_k8s_events", "Watch events applied, by type.", ["resource", "type"])
MALFORMED = Counter(
    "kdns_k8s_malformed", "Objects or watch events skipped as malformed.", ["resource"]
)


class SyncClock(Protocol):
    """What the last-sync-age collector reads from a reflector."""

    @property
    def resource_name(self) -> str: ...

    @property
    def last_sync(self) -> float | None: ...


class _LastSyncAge(Collector):
    def __init__(self) -> None:
        self._reflectors: weakref.WeakSet[SyncClock] = weakref.WeakSet()  # type: ignore[type-var]

    def track(self, reflector: SyncClock) -> None:
        self._reflectors.add(reflector)

    def untrack(self, reflector: SyncClock) -> None:
        self._reflectors.discard(reflector)

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "kdns_k8s_last_sync_age_seconds",
            "Seconds since the API server last confirmed a reflector's state.",
            labels=["resource"],
        )
        now = time.monotonic()
        ages: dict[str, float] = {}
        for r in list(self._reflectors):
            if r.last_sync is not None:
                age = now - r.last_sync
                ages[r.resource_name] = max(age, ages.get(r.resource_name, 0.0))
        for name, age in sorted(ages.items()):
            family.add_metric([name], age)
        yield family


LAST_SYNC_AGE = _LastSyncAge()
REGISTRY.register(LAST_SYNC_AGE)
