"""cache's metrics, CoreDNS's names and labels (metrics.md §2.3)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter, Gauge

ENTRIES = Gauge("coredns_cache_entries", "The number of elements in the cache.",
                ["server", "type", "zones", "view"])
REQUESTS = Counter("coredns_cache_requests_total", "The count of cache requests.",
                   ["server", "zones", "view"])
HITS = Counter("coredns_cache_hits_total", "The count of cache hits.",
               ["server", "type", "zones", "view"])
MISSES = Counter("coredns_cache_misses_total", "The count of cache misses. Deprecated, derive "
                 "misses from cache hits/requests counters.", ["server", "zones", "view"])
PREFETCHES = Counter("coredns_cache_prefetch_total", "The number of times the cache has "
                     "prefetched a cached item.", ["server", "zones", "view"])
DROPS = Counter("coredns_cache_drops_total", "The number responses that are not cached, because "
                "the reply is malformed.", ["server", "zones", "view"])
SERVED_STALE = Counter("coredns_cache_served_stale_total", "The number of requests served from "
                       "stale cache entries.", ["server", "zones", "view"])
EVICTIONS = Counter("coredns_cache_evictions_total", "The count of cache evictions.",
                    ["server", "type", "zones", "view"])


@dataclass(frozen=True, slots=True)
class Bound:
    """Children pre-bound to one (server, zones) pair: .inc() on these costs ~0.4 µs."""

    requests: Counter
    misses: Counter
    prefetches: Counter
    drops: Counter
    served_stale: Counter
    hits: dict[str, Counter]
    evictions: dict[str, Counter]
    entries: dict[str, Gauge]


def bind(server: str, zones: str) -> Bound:
    kinds = ("success", "denial")
    return Bound(
        requests=REQUESTS.labels(server, zones, ""),
        misses=MISSES.labels(server, zones, ""),
        prefetches=PREFETCHES.labels(server, zones, ""),
        drops=DROPS.labels(server, zones, ""),
        served_stale=SERVED_STALE.labels(server, zones, ""),
        hits={k: HITS.labels(server, k, zones, "") for k in kinds},
        evictions={k: EVICTIONS.labels(server, k, zones, "") for k in kinds},
        entries={k: ENTRIES.labels(server, k, zones, "") for k in kinds},
    )
