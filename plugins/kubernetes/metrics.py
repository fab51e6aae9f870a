"""kubernetes plugin metrics (CoreDNS plugin/kubernetes/object/metrics.go)."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import Histogram

from kdns.metrics import DNS_PROG_BUCKETS

from .records import HEADLESS_KIND, Slice
from .store import Store

DNS_PROGRAMMING_DURATION = Histogram(
    "coredns_kubernetes_dns_programming_duration_seconds",
    "Histogram of the time (in seconds) it took to program a dns instance.",
    ["service_kind"],
    buckets=DNS_PROG_BUCKETS,
)


def programming_latency_observer(
    clock: Callable[[], float] = time.time,
) -> Callable[[Slice, Store], None]:
    """A Store slice observer that records the DNS programming latency like CoreDNS: only for
    slices of a headless service (the service must be known) that carry the
    ``endpoints.kubernetes.io/last-change-trigger-time`` annotation, labelled
    ``headless_with_selector``; measured when the change is applied (so served)."""

    def observe(sl: Slice, store: Store) -> None:
        if sl.trigger_time is None or not sl.service:
            return
        svc = store.service(sl.namespace, sl.service)
        if svc is None or svc.kind != HEADLESS_KIND:
            return
        DNS_PROGRAMMING_DURATION.labels("headless_with_selector").observe(
            max(0.0, clock() - sl.trigger_time))

    return observe
